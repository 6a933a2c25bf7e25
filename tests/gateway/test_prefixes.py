"""Per-server prefixes (``prefix: auto | always | never``, design.md §4)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import yaml

from tests.gateway.fakes import FakeServer, echo, running_gateway
from watchgate.config import parse_config


def config(**prefixes: str) -> Any:
    upstreams = [
        {"name": name, "command": ["fake"], **({"prefix": prefix} if prefix != "auto" else {})}
        for name, prefix in prefixes.items()
    ]
    return parse_config(yaml.safe_dump({"proxy": {"upstreams": upstreams}}))


async def _call(client: Any, name: str, text: str) -> str:
    result = await client.result("tools/call", {"name": name, "arguments": {"text": text}})
    return str(result["content"][0]["text"])


async def test_a_server_with_prefix_never_keeps_its_names_beside_prefixed_ones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    both = {"tools": {}, "resources": {}}
    files = FakeServer("files", tools={"read": echo}, resources=["file:///a"], capabilities=both)
    time = FakeServer("time", tools={"now": echo}, resources=["tz://utc"], capabilities=both)
    async with running_gateway(config(files="never", time="auto"), files, time) as (_, client):
        await client.initialize()
        tools = await client.result("tools/list")
        assert [t["name"] for t in tools["tools"]] == ["read", "time__now"]
        resources = await client.result("resources/list")
        assert [r["uri"] for r in resources["resources"]] == ["file:///a", "time+tz://utc"]
        assert await _call(client, "read", "plain") == "plain"
        assert await _call(client, "time__now", "prefixed") == "prefixed"
        read = await client.result("resources/read", {"uri": "file:///a"})
        assert read["contents"][0]["uri"] == "file:///a"
        assert files.session.requests("tools/call")[0]["params"]["name"] == "read"


async def test_prefix_always_with_a_single_server(autojump_clock: trio.testing.MockClock) -> None:
    only = FakeServer("only", tools={"echo": echo})
    async with running_gateway(config(only="always"), only) as (_, client):
        await client.initialize()
        tools = await client.result("tools/list")
        assert [t["name"] for t in tools["tools"]] == ["only__echo"]
        assert await _call(client, "only__echo", "x") == "x"


async def test_two_plain_servers_offering_one_name_the_first_keeps_it_and_it_is_reported(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    first = FakeServer("first", tools={"echo": echo, "only_first": echo})
    second = FakeServer("second", tools={"echo": echo, "only_second": echo})
    with caplog.at_level(logging.ERROR, logger="watchgate.router"):
        async with running_gateway(config(first="never", second="never"), first, second) as (_, client):
            await client.initialize()
            tools = await client.result("tools/list")
            assert [t["name"] for t in tools["tools"]] == ["echo", "only_first", "only_second"]
            await _call(client, "echo", "x")
            await _call(client, "only_second", "y")
            assert len(first.session.requests("tools/call")) == 1
            assert [c["params"]["name"] for c in second.session.requests("tools/call")] == ["only_second"]
    collisions = [r.getMessage() for r in caplog.records if "neither with a prefix" in r.getMessage()]
    assert len(collisions) == 1
    assert "'first'" in collisions[0] and "'second'" in collisions[0] and "'echo'" in collisions[0]
