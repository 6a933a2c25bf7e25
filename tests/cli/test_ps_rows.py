"""How ``watchgate ps`` renders a server's row."""

from __future__ import annotations

from typing import Any

from watchgate.cli.ps import upstream_row as _upstream_row


def _row(**fields: Any) -> dict[str, Any]:
    base = {
        "name": "s",
        "transport": "stdio",
        "state": "running",
        "pid": 4242,
        "uptime": 61.0,
        "restarts": 0,
        "tools": 3,
        "in_flight": 0,
        "next_restart_in": None,
        "last_error": None,
    }
    return base | fields


def test_a_remote_server_shows_its_host_where_a_process_shows_its_pid() -> None:
    assert _upstream_row(_row())[3] == 4242
    remote = _row(transport="http", pid=None, host="api.example.com:443")
    assert _upstream_row(remote)[3] == "api.example.com:443"
    assert _upstream_row(_row(pid=None))[3] == "-"  # not running, and an older daemon's row
