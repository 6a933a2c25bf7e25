"""A command loads what it runs: `attach` (what every MCP client launches) and `ps` start without
the gateway, HTTP or YAML; `--version` without even trio. Asserted on the modules a fresh
interpreter holds after the command, not on a time, so it cannot flake."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from watchgate.cli.main import COMMANDS, _parser

#: what only running a gateway, loading a config or speaking HTTP needs
HEAVY = (
    "watchgate.gateway.tree",
    "watchgate.daemon.server",
    "watchgate.listeners.http.server",
    "httpx2",
    "yaml",
    "actors",
)

_PROBE = """
import json, sys
from watchgate.cli.main import main
try:
    code = main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def loaded(tmp_path: Path, *argv: str) -> tuple[int, set[str]]:
    """The exit code of ``watchgate ARGV`` and the top modules and watchgate modules it loaded."""
    out = tmp_path / "modules.json"
    env = {**os.environ, "WATCHGATE_RUNTIME_DIR": str(tmp_path / "run"), "WATCHGATE_AUTOSTART": "0"}
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), *argv], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.exists(), proc.stderr
    report = json.loads(out.read_text())
    names = set(report["modules"])
    return report["code"], names | {name.split(".")[0] for name in names}


@pytest.mark.parametrize("argv", [["ps"], ["attach"], ["restart", "--all"]])
def test_daemon_clients_start_without_the_gateway(tmp_path: Path, argv: list[str]) -> None:
    code, modules = loaded(tmp_path, *argv)
    assert code == 1  # no daemon runs here: one line says so (tests/daemon cover that line)
    assert "trio" in modules and "watchgate.daemon.client" in modules
    assert not modules & set(HEAVY)


def test_version_loads_no_runtime(tmp_path: Path) -> None:
    code, modules = loaded(tmp_path, "--version")
    assert code == 0
    assert not modules & {"trio", "msgspec", *HEAVY}


def test_every_command_is_found_where_the_table_says() -> None:
    everything = _commands(_parser())
    assert set(everything) == {*COMMANDS, "completion"}
    for command, module in COMMANDS.items():
        assert command in _commands(_parser([module])), f"{module} does not register {command!r}"


def test_help_still_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    from watchgate.cli.main import main

    with pytest.raises(SystemExit):
        main(["--help"])
    lines = capsys.readouterr().out.splitlines()
    listed = [line.split()[0] for line in lines if line.startswith("    ") and line[4] != " "]
    assert listed == [*COMMANDS, "completion"]  # each on a line of its own, in order


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)
