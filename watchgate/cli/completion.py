"""``watchgate completion bash|zsh|fish``: a shell completion script, printed.

Made from the command line's own parser, so it never lags behind a new command or flag:
bash and zsh by shtab (the standard generator for argparse), fish by the few lines below
(shtab has no fish). Static scripts: pressing Tab never starts Watchgate.

    watchgate completion bash > ~/.local/share/bash-completion/completions/watchgate
    watchgate completion zsh > "${fpath[1]}/_watchgate"
    watchgate completion fish > ~/.config/fish/completions/watchgate.fish
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["fish_script", "register"]


def register(commands: Any, parser: Callable[[], argparse.ArgumentParser]) -> None:
    completion = commands.add_parser(
        "completion",
        help="print a completion script for bash, zsh or fish",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        epilog="example: watchgate completion bash > ~/.local/share/bash-completion/completions/watchgate",
    )
    completion.add_argument("shell", choices=["bash", "zsh", "fish"])
    completion.set_defaults(func=lambda args: _print(parser(), args.shell))


def _print(parser: argparse.ArgumentParser, shell: str) -> int:
    if shell == "fish":
        print(fish_script(parser))
        return 0
    import shtab  # only for this command

    print(shtab.complete(parser, shell=shell))
    return 0


def fish_script(parser: argparse.ArgumentParser) -> str:
    program = parser.prog
    lines = [
        f"# fish completion for {program}, made by `{program} completion fish`",
        f"complete -c {program} -f",
    ]
    lines += _options(program, "__fish_use_subcommand", parser)
    for name, help_text, sub in _commands(parser):
        lines.append(f"complete -c {program} -n __fish_use_subcommand -a {name} -d {_quote(help_text)}")
        seen = f"__fish_seen_subcommand_from {name}"
        lines += _options(program, seen, sub)
        for inner, inner_help, inner_parser in _commands(sub):
            lines.append(f"complete -c {program} -n {_quote(seen)} -a {inner} -d {_quote(inner_help)}")
            lines += _options(program, f"{seen}; and __fish_seen_subcommand_from {inner}", inner_parser)
    return "\n".join(lines)


def _commands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name, ""), sub


def _options(program: str, condition: str, parser: argparse.ArgumentParser) -> Iterator[str]:
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        flags = []
        for option in action.option_strings:
            flags.append(f"-l {option[2:]}" if option.startswith("--") else f"-s {option[1:]}")
        flag = isinstance(action, argparse._HelpAction | argparse._VersionAction) or action.nargs == 0
        described = f" -d {_quote(action.help)}" if action.help else ""
        required = "" if flag else " -r"
        yield f"complete -c {program} -n {_quote(condition)} {' '.join(flags)}{required}{described}"


def _quote(text: str) -> str:
    return shlex.quote(" ".join(text.split()))
