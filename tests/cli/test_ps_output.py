"""How ``ps`` draws: colours only for a terminal that wants them; a server's process tree."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from watchgate.cli import ps
from watchgate.daemon.proctree import process_tree


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


ROW = {
    "name": "time", "transport": "stdio", "state": "failed", "pid": None, "uptime": None, "restarts": 5,
    "tools": 0, "in_flight": 0, "last_error": "exited with code 1", "next_restart_in": None,
}  # fmt: skip


@pytest.mark.parametrize(
    ("environ", "terminal", "coloured"),
    [({}, True, True), ({"NO_COLOR": ""}, True, False), ({"TERM": "dumb"}, True, False), ({}, False, False)],
)
def test_states_are_coloured_only_on_a_terminal_that_wants_it(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], terminal: bool, coloured: bool
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    out = Terminal() if terminal else io.StringIO()
    enabled = ps._colour_enabled(out)
    ps.print_table(["NAME", "STATE"], [["time", "failed"]], out, colour_column=1 if enabled else None)
    text = out.getvalue()
    assert ("\x1b[31mfailed\x1b[0m" in text) is coloured
    assert text.splitlines()[0] == "NAME  STATE"  # the header is never coloured, columns still align


def test_the_process_tree_follows_children_from_proc(tmp_path: Path) -> None:
    def process(pid: int, parent: int, *argv: str) -> None:
        folder = tmp_path / str(pid)
        folder.mkdir()
        (folder / "stat").write_text(f"{pid} (x (y)) S {parent} {pid} 0 0\n")  # a name with parentheses
        (folder / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")

    process(10, 1, "npx", "-y", "server")
    process(11, 10, "node", "server.js")
    process(12, 11, "helper")
    process(13, 10, "other")
    process(20, 1, "unrelated")
    (tmp_path / "self").mkdir()
    assert process_tree(10, tmp_path) == [
        (0, 10, "npx -y server"),
        (1, 11, "node server.js"),
        (2, 12, "helper"),
        (1, 13, "other"),
    ]
    assert process_tree(None, tmp_path) == []
    assert process_tree(99, tmp_path) == [(0, 99, "?")]  # gone meanwhile: the pid alone


def test_a_failed_server_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    detail = {
        "row": ROW, "target": "uvx mcp-server-time", "policy": "permanent", "protocol": None, "server": None,
        "processes": [], "tools": [], "events": ["2026-12-02T00:00:00Z event: failed"], "stderr": ["boom\x1b]0;x"],
    }  # fmt: skip
    out = io.StringIO()
    ps._print_detail(detail, out, colour=False)
    text = out.getvalue()
    assert text.splitlines()[0] == "time  failed  no process  not running  restarts 5"
    assert "  transport  stdio\n" in text and "  last error exited with code 1" in text
    assert "\x1b]" not in text  # a server's words are escaped before they reach the terminal
