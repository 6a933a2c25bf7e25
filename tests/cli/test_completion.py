"""``watchgate completion`` and the examples in every ``--help``."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from watchgate.cli.main import _parser, main


def _commands(
    parser: argparse.ArgumentParser, path: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{path} {name}".strip(), sub
                yield from _commands(sub, f"{path} {name}")


def test_every_command_ends_its_help_with_an_example() -> None:
    missing = [name for name, sub in _commands(_parser()) if "example" not in (sub.epilog or "")]
    assert missing == []


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_a_completion_script_for_each_shell_knows_every_command(
    shell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    for command in ("import", "ps", "restart", "completion", "auth"):
        assert command in script
    if shell == "fish":
        assert "complete -c watchgate -n '__fish_seen_subcommand_from ps' -l watch -r" in script
        assert "-n '__fish_seen_subcommand_from auth; and __fish_seen_subcommand_from login'" in script
    checker = shutil.which(shell)
    if checker is not None:  # the shell itself reads it without a syntax error
        checked = subprocess.run([checker, "-n"], input=script, capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr


def test_an_unknown_shell_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["completion", "tcsh"])
    assert exited.value.code == 2
    assert "invalid choice: 'tcsh'" in capsys.readouterr().err
