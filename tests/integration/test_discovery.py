"""Search mode with the official SDK as the client, over stdio and over HTTP, in front of the
real reference servers: it lists two tools, finds what a task needs, and calls it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import yaml
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.integration.conftest import EVERYTHING, TIME, gateway, text_of, upstream
from tests.integration.test_http_clients import gateway_over_http
from watchgate.bench.httpdriver import free_port

pytestmark = pytest.mark.integration


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "search.yaml"
    document: dict[str, Any] = {
        "proxy": {
            "startup_wait": 20,
            "upstreams": [upstream("everything", EVERYTHING), upstream("time", TIME)],
        },
        "discovery": {"mode": "search", "always": ["time__get_current_time"]},
        "audit": {"enabled": False},
    }
    path.write_text(yaml.safe_dump(document))
    return path


async def _lists_finds_and_calls(session: ClientSession) -> None:
    listed = [tool.name for tool in (await session.list_tools()).tools]
    assert listed == ["find_tools", "call_tool", "time__get_current_time"]
    found = await session.call_tool("find_tools", {"query": "echo a message back", "limit": 3})
    names = [tool["name"] for tool in (found.structured_content or {})["tools"]]
    assert names[0] == "everything__echo", names
    echoed = await session.call_tool(
        "call_tool", {"name": "everything__echo", "arguments": {"message": "hi"}}
    )
    assert text_of(echoed) == "Echo: hi"
    zone = await session.call_tool("find_tools", {"query": "convert a time between time zones"})
    assert "time__convert_time" in [tool["name"] for tool in (zone.structured_content or {})["tools"]][:3]


async def test_search_mode_over_stdio(tmp_path: Path) -> None:
    with trio.fail_after(90):
        async with gateway(_config(tmp_path)) as session:
            await _lists_finds_and_calls(session)


async def test_search_mode_over_http(tmp_path: Path) -> None:
    port = free_port()
    with trio.fail_after(90):
        async with (
            gateway_over_http(_config(tmp_path), port, tmp_path / "http.log") as url,
            streamable_http_client(url) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            await _lists_finds_and_calls(session)
