"""``watchgate import`` as a person runs it: preview, merge, rewrite, undo, and again."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.importing.conftest import Machine
from watchgate.cli.main import main
from watchgate.config import load_config


def test_import_and_rewrite_then_undo_and_again(
    every_client: Machine, capsys: pytest.CaptureFixture[str]
) -> None:
    config = every_client.project / "supervisor.yaml"
    desktop = every_client.home / ".config" / "Claude" / "claude_desktop_config.json"
    claude_code = every_client.home / ".claude.json"
    before = desktop.read_text()

    assert main(["import", "-c", str(config), "--dry-run"]) == 0
    preview = capsys.readouterr().out
    assert "Found 8 server(s) in 6 client file(s)" in preview
    assert "GITHUB_PERSONAL_ACCESS_TOKEN looks like a secret" in preview
    assert "in 2 clients: one upstream" in preview and "set API_KEY (VS Code asked for it)" in preview
    assert not config.exists()  # a dry run writes nothing

    assert main(["import", "-c", str(config), "--yes", "--rewrite"]) == 0
    out = capsys.readouterr().out
    written = config.read_text()
    assert "name: github" in written and "name: time-server" in written
    assert written.count("server-github") == 1  # Claude Desktop's and Cursor's: one upstream
    assert "note: environment variable 'API_KEY' is not set" in out  # VS Code's input: set it
    pointed = json.loads(desktop.read_text())["mcpServers"]
    assert list(pointed) == ["watchgate"] and pointed["watchgate"]["args"] == [
        "attach",
        "-c",
        str(config.resolve()),
    ]
    kept = json.loads(claude_code.read_text())
    assert kept["numStartups"] == 12 and list(kept["mcpServers"]) == ["watchgate"]  # the rest survives
    vscode = json.loads((every_client.project / ".vscode" / "mcp.json").read_text())
    assert vscode["servers"]["watchgate"]["type"] == "stdio" and "inputs" in vscode

    undo = next(line for line in out.splitlines() if str(desktop) in line and "undo:" in line)
    subprocess.run(shlex.split(undo.split("undo: ", 1)[1]), check=True)
    assert desktop.read_text() == before  # the backup is the file as it was

    assert main(["import", "-c", str(config), "--yes", "--rewrite"]) == 0
    again = capsys.readouterr().out
    assert "Nothing new to add." in again and config.read_text() == written  # twice changes nothing
    assert f"Already points at Watchgate: {claude_code}" in again  # and the clients stay pointed
    assert "Skipped: watchgate" in again


def test_without_a_terminal_nothing_is_written_unless_confirmed(
    every_client: Machine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["import"]) == 1
    assert "confirm with --yes" in capsys.readouterr().err
    assert not (every_client.home / ".config" / "watchgate" / "supervisor.yaml").exists()


def test_a_file_given_with_from_that_is_not_json_is_one_line(
    machine: Machine, capsys: pytest.CaptureFixture[str]
) -> None:
    (machine.project / "x.json").write_text("nope")
    assert main(["import", "--from", "x.json", "--dry-run"]) == 1
    assert capsys.readouterr().err.strip() == "watchgate: not valid JSON (line 1: Expecting value)"


def test_a_merge_that_would_not_load_writes_nothing(
    machine: Machine, capsys: pytest.CaptureFixture[str]
) -> None:
    config = machine.project / "supervisor.yaml"
    config.write_text("proxy:\n  upstreams:\n    - name: a\n      command: [x]\n      bogus: 1\n")
    machine.write("c.json", {"mcpServers": {"b": {"command": "y"}}}, base=machine.project)
    assert main(["import", "--from", "c.json", "-c", str(config), "--yes"]) == 1
    assert "would not load" in capsys.readouterr().err
    assert "name: b" not in config.read_text()


def test_the_config_found_like_up_finds_it(machine: Machine, capsys: pytest.CaptureFixture[str]) -> None:
    machine.write("c.json", {"mcpServers": {"b": {"command": "y"}}}, base=machine.project)
    assert main(["import", "--from", "c.json", "--yes"]) == 0
    target = machine.home / ".config" / "watchgate" / "supervisor.yaml"
    assert [u.name for u in load_config(target).proxy.upstreams] == ["b"]
    assert Path(target).read_text().startswith("proxy:")


@pytest.mark.parametrize(("answer", "written"), [("n", False), ("y", True)])
def test_at_a_terminal_it_asks_first(
    machine: Machine,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    written: bool,
) -> None:
    machine.write(
        "c.json",
        {"mcpServers": {"time": {"command": "uvx", "args": ["mcp-server-time"]}}},
        base=machine.project,
    )
    config = machine.project / "supervisor.yaml"
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    asked: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or answer)
    code = main(["import", "--from", "c.json", "-c", str(config)])
    assert asked == [f"Add 1 server(s) to {config}? [y/N] "]
    assert (code, config.exists()) == ((0, True) if written else (1, False))
