"""Profiles: two clients of one gateway, each seeing what its profile shows."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
import yaml

from tests.gateway.fakes import FakeServer, echo, running_daemon
from watchgate.config import GatewayConfig, parse_config
from watchgate.errors import ConfigError

PROFILES = {
    "coding": {"servers": ["fs", "git"], "tools": {"deny": ["git__push*"]}},
    "chat": {"servers": ["calendar"]},
    "readonly": {"tools": {"allow": ["*__read*", "*__list*"]}},
}


def _config(profiles: dict[str, Any] = PROFILES) -> GatewayConfig:
    upstreams = [{"name": name, "command": ["fake"]} for name in ("fs", "git", "calendar")]
    document = {"proxy": {"startup_wait": 15, "upstreams": upstreams}, "profiles": profiles}
    return parse_config(yaml.safe_dump(document))


def _servers() -> tuple[FakeServer, ...]:
    resources = {"capabilities": {"tools": {}, "resources": {}}}
    return (
        FakeServer("fs", tools={"read": echo, "write": echo}, resources=["file:///a"], **resources),
        FakeServer("git", tools={"list_commits": echo, "push": echo}, **resources),
        FakeServer("calendar", tools={"list_events": echo}, resources=["cal://today"], **resources),
    )


async def _tools(client: Any) -> list[str]:
    return sorted(t["name"] for t in (await client.result("tools/list"))["tools"])


async def test_each_client_sees_what_its_profile_shows(autojump_clock: trio.testing.MockClock) -> None:
    async with running_daemon(_config(), *_servers()) as (gateway, attach):
        coding, chat, everything = (
            await attach(profile="coding"),
            await attach(profile="chat"),
            await attach(),
        )
        for client in (coding, chat, everything):
            await client.initialize()
        await coding.wait_for(lambda: gateway.router.tool_count("calendar") == 1)
        assert await _tools(coding) == ["fs__read", "fs__write", "git__list_commits"]
        assert await _tools(chat) == ["calendar__list_events"]
        assert len(await _tools(everything)) == 5
        uris = [r["uri"] for r in (await chat.result("resources/list"))["resources"]]
        assert uris == ["calendar+cal://today"]

        # calls are refused like calls to what does not exist, and never reach the server
        for client, name in ((coding, "git__push"), (coding, "calendar__list_events"), (chat, "fs__read")):
            error = (await client.request("tools/call", {"name": name}))["error"]
            assert error["code"] == -32602 and "unknown tool" in error["message"]
        refused = await chat.request("resources/read", {"uri": "fs+file:///a"})
        assert refused["error"]["code"] == -32602
        assert "result" in await coding.request(
            "tools/call", {"name": "fs__read", "arguments": {"text": "x"}}
        )
        assert "result" in await everything.request("tools/call", {"name": "git__push", "arguments": {}})
        git = next(s for s in gateway.upstreams.values() if s.name == "git")
        assert git.in_flight == 0
        profiles = sorted((s.client.profile or "-") for s in gateway.sessions())
        assert profiles == ["-", "chat", "coding"]


async def test_a_reloaded_profile_applies_at_once(autojump_clock: trio.testing.MockClock) -> None:
    async with running_daemon(_config(), *_servers()) as (gateway, attach):
        reader = await attach(profile="readonly")
        await reader.initialize()
        await reader.wait_for(lambda: gateway.router.tool_count("calendar") == 1)
        assert await _tools(reader) == ["calendar__list_events", "fs__read", "git__list_commits"]
        summary = await gateway.reload(
            _config({**PROFILES, "readonly": {"servers": ["fs"], "tools": {"allow": ["*__read"]}}})
        )
        assert summary["profiles"] == ["readonly"] and summary["unchanged"] == ["fs", "git", "calendar"]
        await reader.wait_for(
            lambda: any(n["method"] == "notifications/tools/list_changed" for n in reader.notifications)
        )
        assert await _tools(reader) == ["fs__read"]
        gone = await gateway.reload(_config({}))  # the profile is gone: its client sees nothing, not more
        assert gone["profiles"] == ["chat", "coding", "readonly"]
        assert await _tools(reader) == []


def test_a_profile_names_only_servers_that_exist() -> None:
    with pytest.raises(ConfigError, match=r"profiles\.coding\.servers: no upstream is called 'svn'"):
        _config({"coding": {"servers": ["svn"]}})
    with pytest.raises(ConfigError, match="profile name 'two words'"):
        _config({"two words": {}})
