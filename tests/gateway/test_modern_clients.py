"""A 2026-07-28 client on a byte stream (stdio, the daemon's socket): no initialize, every
request with its own ``_meta`` (protocol/eras.py)."""

from __future__ import annotations

from typing import Any

import trio

from tests.gateway.fakes import FakeServer, echo, make_config, running_gateway

META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "modern", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


def modern(params: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {**(params or {}), "_meta": {**META, **meta}}


async def test_discover_then_calls_without_initialize(autojump_clock: trio.testing.MockClock) -> None:
    server = FakeServer("fx", tools={"echo": echo}, instructions="hello")
    async with running_gateway(make_config("fx"), server) as (_, client):
        discovered = await client.result("server/discover", modern())
        assert discovered["supportedVersions"] == ["2026-07-28"]
        assert discovered["resultType"] == "complete" and discovered["instructions"] == "hello"
        assert "tools" in discovered["capabilities"]
        tools = await client.result("tools/list", modern())
        assert (tools["resultType"], tools["ttlMs"], tools["cacheScope"]) == ("complete", 0, "private")
        call = modern({"name": "echo", "arguments": {"text": "hi"}}, progressToken="p1")
        result = await client.result("tools/call", call)
        assert result == {"resultType": "complete", "content": [{"type": "text", "text": "hi"}]}
        upstream_meta = server.session.requests("tools/call")[0]["params"]["_meta"]
        assert not any(key.startswith("io.modelcontextprotocol/") for key in upstream_meta)
        assert "progressToken" in upstream_meta  # the client's own keys go on (mapped)


async def test_a_version_the_gateway_does_not_speak_is_told_the_supported_ones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_gateway(make_config("fx"), FakeServer("fx")) as (_, client):
        response = await client.request(
            "tools/list", modern(**{"io.modelcontextprotocol/protocolVersion": "2031-01-01"})
        )
        assert response["error"]["code"] == -32022
        assert response["error"]["data"]["supported"] == ["2026-07-28"]


async def test_capabilities_are_required_in_every_request(autojump_clock: trio.testing.MockClock) -> None:
    async with running_gateway(make_config("fx"), FakeServer("fx")) as (_, client):
        meta = {k: v for k, v in META.items() if not k.endswith("clientCapabilities")}
        response = await client.request("tools/list", {"_meta": meta})
        assert response["error"]["code"] == -32602
        assert "clientCapabilities" in response["error"]["message"]


async def test_legacy_requests_beside_are_unchanged(autojump_clock: trio.testing.MockClock) -> None:
    async with running_gateway(make_config("fx"), FakeServer("fx", tools={"echo": echo})) as (_, client):
        await client.initialize()
        tools = await client.result("tools/list")
        assert "resultType" not in tools


async def test_a_result_a_plugin_changed_loses_the_servers_cache_hints(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from tests.plugins.helpers import config_with

    async def cached(session: Any, args: dict[str, Any]) -> Any:
        said = args["text"].replace("SECRET", "key=AKIAIOSFODNN7EXAMPLE")  # the server leaks it
        return {"content": [{"type": "text", "text": said}], "ttlMs": 60000, "cacheScope": "public"}

    server = FakeServer("fx", tools={"say": cached})
    config = config_with("fx", plugins=[{"name": "secrets"}])
    async with running_gateway(config, server) as (_, client):
        plain = await client.result("tools/call", modern({"name": "say", "arguments": {"text": "hello"}}))
        assert (plain["ttlMs"], plain["cacheScope"]) == (60000, "public")  # untouched: the server's own
        secret = {"name": "say", "arguments": {"text": "SECRET"}}
        redacted = await client.result("tools/call", modern(secret))
        assert "REDACTED" in redacted["content"][0]["text"]
        assert "ttlMs" not in redacted and "cacheScope" not in redacted


async def test_the_upstream_hears_which_calls_take_input_required_themselves(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A 2026-07-28 call is marked for its upstream's transport with the capabilities it
    declared (a 2026-07-28 server's input_required then reaches the client untouched); a legacy
    call on the same connection is not."""
    server = FakeServer("fx", tools={"echo": echo})
    async with running_gateway(make_config("fx"), server) as (_, client):
        await client.initialize()
        declared = {"elicitation": {}}
        call = {"name": "echo", "arguments": {"text": "hi"}}
        await client.result(
            "tools/call", modern(call, **{"io.modelcontextprotocol/clientCapabilities": declared})
        )
        await client.result("tools/call", call)
        modern_call, legacy_call = server.session.requests("tools/call")
        assert server.session.relayed == {modern_call["id"]: declared}
        assert legacy_call["id"] not in server.session.relayed


async def test_subscriptions_listen_on_a_byte_stream_says_where_it_is_served(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_gateway(make_config("fx"), FakeServer("fx")) as (_, client):
        response = await client.request(
            "subscriptions/listen", modern({"notifications": {"toolsListChanged": True}})
        )
    assert response["error"]["code"] == -32601
    assert "over HTTP only" in response["error"]["message"]
