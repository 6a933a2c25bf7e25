"""The ``watchgate`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import trio

from watchgate import __version__
from watchgate.cli import completion
from watchgate.cli.options import listen_address, with_http
from watchgate.config import GatewayConfig, Transport, load_config
from watchgate.errors import CannotListen, ConfigError, WatchgateError
from watchgate.gateway.tree import audit_actor, unknown_profile
from watchgate.listeners.stdio import serve_stdio

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
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
    "pin list": "watchgate pin list",
    "pin approve": "watchgate pin approve github__search_issues",
    "auth": "watchgate auth login linear",
    "auth login": "watchgate auth login linear --no-browser",
    "auth status": "watchgate auth status",
    "auth logout": "watchgate auth logout linear",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = args.func(args)
    except WatchgateError as exc:  # a refusal the command did not word itself: one line, no traceback
        print(f"watchgate: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # its reader left (`| head`): stop quietly, as any Unix tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error flushing at exit
        return 1
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="watchgate", description="A security gateway for MCP servers.")
    parser.add_argument("--version", action="version", version=f"watchgate {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _register_core(commands)
    for register in _extra_commands():
        register(commands)
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


def _extra_commands() -> list[Callable[[Any], None]]:
    """Command groups that live with their feature; each module offers ``register(commands)``
    adding its sub-commands whose ``func(args) -> int`` is the exit code."""
    from watchgate.audit import cli as audit_cli
    from watchgate.bench import cli as bench_cli
    from watchgate.cli import auth as auth_cli
    from watchgate.cli import daemon as cli_daemon
    from watchgate.cli import importer as import_cli
    from watchgate.cli import pin as plugins_cli

    return [
        cli_daemon.register,
        audit_cli.register,
        bench_cli.register,
        plugins_cli.register,
        auth_cli.register,
        import_cli.register,
    ]


def _register_core(commands: Any) -> None:
    run = commands.add_parser("run", help="run one gateway in this process, speaking MCP on stdin/stdout")
    run.add_argument("-c", "--config", required=True, help="the YAML config file")
    run.add_argument(
        "--audit-log",
        metavar="PATH",
        help="write the audit log here instead of the config's audit.path (one log has one writer: "
        "use this to run beside a daemon on the same config)",
    )
    run.add_argument(
        "--http",
        metavar="HOST:PORT",
        type=listen_address,
        help="serve MCP over Streamable HTTP on this address instead of stdio (proxy.http.listen)",
    )
    run.add_argument("--profile", metavar="NAME", help="the client sees only what this profile shows (stdio)")
    run.set_defaults(func=_run)
    validate = commands.add_parser("validate", help="check a config file and print every problem")
    validate.add_argument("-c", "--config", required=True, help="the YAML config file")
    validate.set_defaults(func=_validate)


def _load(path: str) -> GatewayConfig | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def _validate(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 1
    names = ", ".join(u.name for u in config.proxy.upstreams)
    print(f"ok: {len(config.proxy.upstreams)} upstream(s) ({names})")
    plain = [u.name for u in config.proxy.upstreams if u.name not in config.proxy.prefixed]
    if config.proxy.multi_server and len(plain) > 1:
        print(
            f"warning: {', '.join(map(repr, plain))} have no prefix: a name two of them offer goes to "
            "the first in the config, the other's is hidden (set `prefix: always` on one)",
            file=sys.stderr,
        )
    for upstream in config.proxy.upstreams:
        if upstream.transport is Transport.STDIO and not (upstream.sandbox and upstream.sandbox.enabled):
            print(
                f"warning: {upstream.name!r} runs without a sandbox: it can read, write and send "
                "whatever you can (add `sandbox: {enabled: true, paths: [...]}`; docs/security.md)",
                file=sys.stderr,
            )
    return 0


def _run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 1
    config = with_http(config, args.http)
    if args.profile is not None and (config.proxy.transport == "http" or args.profile not in config.profiles):
        why = (
            "over HTTP each client chooses its profile (?profile=NAME)"
            if config.proxy.transport == "http"
            else unknown_profile(config, args.profile)
        )
        print(f"watchgate: {why}", file=sys.stderr)
        return 1
    logging.basicConfig(stream=sys.stderr, level=config.logging.level.upper(), format=_FORMAT)
    audit = audit_actor(config, path=args.audit_log)  # AuditLogInUse: one line from main()
    if config.proxy.transport == "http":
        from watchgate.listeners.http import serve_http  # hypercorn loads only for HTTP

        try:
            trio.run(serve_http, config, audit, restrict_keyboard_interrupt_to_checkpoints=True)
        except CannotListen:
            if audit is not None:
                audit.release()
            raise
        return 0
    trio.run(serve_stdio, config, audit, args.profile, restrict_keyboard_interrupt_to_checkpoints=True)
    return 0
