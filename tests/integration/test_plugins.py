"""Plugins end to end: ``watchgate run`` with the real server-filesystem, the official SDK client."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import yaml
from mcp import MCPError

from tests.integration.conftest import FILESYSTEM, TIME, gateway, text_of, upstream

pytestmark = pytest.mark.integration

FAKE_KEY = "AKIAIOSFODNN7EXAMPLE"  # AWS's documented example key id


async def test_policy_on_a_real_filesystem_server(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    (shared / "private").mkdir(parents=True)
    (shared / "notes.txt").write_text("just notes\n")
    (shared / "creds.txt").write_text(f"[default]\naws_access_key_id = {FAKE_KEY}\nregion = eu-west-1\n")
    (shared / "private" / "diary.txt").write_text("dear diary\n")
    fs = upstream("fs", [FILESYSTEM, str(shared)])
    fs["plugins"] = [  # this server's own plugins, on top of the global ones
        {"name": "tool_access", "config": {"tools": {"deny": ["write_file", "edit_file", "move_file"]}}},
        {"name": "path_guard", "config": {"allow": [f"{shared}/**"], "deny": [f"{shared}/private/**"]}},
    ]
    config = tmp_path / "watchgate.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "proxy": {"startup_wait": 20, "upstreams": [fs, upstream("time", TIME)]},
                "plugins": [{"name": "secrets"}],
                "logging": {"level": "info"},
            }
        )
    )
    stderr = tmp_path / "gateway.log"
    with trio.fail_after(60):
        async with gateway(config, stderr=stderr) as session:
            names = {tool.name for tool in (await session.list_tools()).tools}
            assert {"fs__read_text_file", "fs__list_directory", "time__get_current_time"} <= names
            assert not names & {"fs__write_file", "fs__edit_file", "fs__move_file"}

            with pytest.raises(MCPError) as denied:
                await session.call_tool("fs__write_file", {"path": str(shared / "x.txt"), "content": "x"})
            assert denied.value.error.code == -32010 and "tool_access" in denied.value.error.message
            assert not (shared / "x.txt").exists()

            for path in (shared / "private" / "diary.txt", f"{shared}/notes/../private/diary.txt"):
                with pytest.raises(MCPError) as refused:
                    await session.call_tool("fs__read_text_file", {"path": str(path)})
                error = refused.value.error
                assert error.code == -32010
                rule = f"{shared}/private/**"
                assert (
                    error.message
                    == f"blocked by plugin 'path_guard': arguments.path: the path is denied (rule '{rule}')"
                )

            notes = await session.call_tool("fs__read_text_file", {"path": str(shared / "notes.txt")})
            assert "just notes" in text_of(notes)
            creds = await session.call_tool("fs__read_text_file", {"path": str(shared / "creds.txt")})
            assert "aws_access_key_id = [REDACTED:aws_access_key]" in text_of(creds)
            assert FAKE_KEY not in text_of(creds) and "region = eu-west-1" in text_of(creds)
    log = stderr.read_text()
    assert "plugin path_guard denied" in log and FAKE_KEY not in log
