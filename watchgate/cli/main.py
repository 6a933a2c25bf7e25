"""The ``watchgate`` command line."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Final

from watchgate import __version__
from watchgate.cli import completion
from watchgate.errors import WatchgateError

#: the module whose ``register(commands)`` adds each command (its ``func(args) -> int`` is the exit
#: code), in the order ``--help`` lists them. Only the module of the command a line names is
#: imported: ``watchgate attach``, what every MCP client launches, and ``watchgate ps`` do not
#: load the gateway, HTTP or YAML to parse their arguments (docs/cli.md, "Start-up").
COMMANDS: Final = {
    "run": "watchgate.cli.run",
    "validate": "watchgate.cli.run",
    "up": "watchgate.cli.daemon",
    "down": "watchgate.cli.daemon",
    "attach": "watchgate.cli.daemon",
    "ps": "watchgate.cli.daemon",
    "restart": "watchgate.cli.daemon",
    "stop": "watchgate.cli.daemon",
    "start": "watchgate.cli.daemon",
    "logs": "watchgate.cli.daemon",
    "reload": "watchgate.cli.daemon",
    "audit": "watchgate.audit.cli",
    "bench": "watchgate.bench.cli",
    "pin": "watchgate.cli.pin",
    "approvals": "watchgate.cli.approvals",
    "console": "watchgate.cli.console",
    "auth": "watchgate.cli.auth",
    "import": "watchgate.cli.importer",
}
_EVERY_MODULE: Final = tuple(dict.fromkeys(COMMANDS.values()))
#: one line a person would type, for each command's --help (by its path after "watchgate")
_EXAMPLES = {
    "run": "watchgate run -c supervisor.yaml --http 127.0.0.1:8848",
    "validate": "watchgate validate -c supervisor.yaml",
    "up": "watchgate up -c ~/.config/watchgate/supervisor.yaml --http 127.0.0.1:8848",
    "down": "watchgate down --grace 10",
    "attach": "watchgate attach -c /home/me/supervisor.yaml   (what a client's config launches)",
    "restart": "watchgate restart github   (or --all)",
    "stop": "watchgate stop github",
    "start": "watchgate start github",
    "logs": "watchgate logs github -f -n 50",
    "reload": "watchgate reload   (after editing the config the daemon runs)",
    "audit": "watchgate audit verify",
    "audit verify": "watchgate audit verify -c supervisor.yaml",
    "audit tail": "watchgate audit tail -n 20",
    "audit stats": "watchgate audit stats",
    "bench": "watchgate bench --quick",
    "pin": "watchgate pin list",
    "approvals": "watchgate approvals --watch",
    "console": "watchgate console --open",
    "approvals approve": "watchgate approvals approve a1-3f9c2e",
    "approvals deny": "watchgate approvals deny a1-3f9c2e --reason 'not on production'",
    "approvals forget": "watchgate approvals forget",
    "pin list": "watchgate pin list",
    "pin approve": "watchgate pin approve github__search_issues",
    "auth": "watchgate auth login linear",
    "auth login": "watchgate auth login linear --no-browser",
    "auth status": "watchgate auth status",
    "auth logout": "watchgate auth logout linear",
}


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    parser = _parser(_modules_for(words))
    args = parser.parse_args(words)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = args.func(args)
    except WatchgateError as exc:  # a refusal the command did not word itself: one line, no traceback
        print(f"watchgate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: the user knows why it stopped; a traceback would say nothing
        return 130
    except BaseExceptionGroup as group:  # a Ctrl-C that trio gathered from its tasks
        if group.split(KeyboardInterrupt)[1] is not None:
            raise
        return 130
    except BrokenPipeError:  # its reader left (`| head`): stop quietly, as any Unix tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error flushing at exit
        return 1
    return code


def _modules_for(words: Sequence[str]) -> list[str]:
    """The command modules a command line needs: its command's, none for ``--version``, every
    one for the list of commands (``--help``, nothing given, a word that is no command)."""
    command = next((word for word in words if not word.startswith("-")), None)
    if command in COMMANDS:
        return [COMMANDS[command]]
    if command == "completion" or (command is None and "--version" in words):
        return []  # completion builds the whole parser itself, when it prints
    return list(_EVERY_MODULE)


def _parser(modules: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command line with the commands of ``modules`` (all of them when not given)."""
    parser = argparse.ArgumentParser(prog="watchgate", description="A security gateway for MCP servers.")
    parser.add_argument("--version", action="version", version=f"watchgate {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _EVERY_MODULE if modules is None else modules:
        importlib.import_module(module).register(commands)
    completion.register(commands, _parser)
    _add_examples(parser)
    return parser


def _add_examples(parser: argparse.ArgumentParser) -> None:
    """``--help`` of every command ends with an example (those that give their own keep it)."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for name, sub in action.choices.items():
            example = _EXAMPLES.get(f"{sub.prog.removeprefix('watchgate ')}") or _EXAMPLES.get(name)
            if example is not None and not sub.epilog:
                sub.epilog = "example:\n  " + example
                sub.formatter_class = argparse.RawDescriptionHelpFormatter
            _add_examples(sub)
