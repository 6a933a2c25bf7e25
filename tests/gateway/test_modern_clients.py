"""A 2026-07-28 client on a byte stream (stdio, the daemon's socket): no initialize, every
request with its own ``_meta`` (protocol/eras.py)."""

from __future__ import annotations

from typing import Any

import trio

from tests.gateway.fakes import FakeServer, echo, make_config, running_daemon, running_gateway
from watchgate.protocol import eras

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


async def test_subscriptions_on_a_byte_stream_share_it_told_apart_by_their_ids(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """On stdio every subscription shares the channel (spec): each gets the acknowledgment, then
    what it asked for tagged with its id; cancelling one ends only that one."""
    server = FakeServer(
        "fx",
        tools={"echo": echo},
        resources=["file:///a"],
        capabilities={"tools": {"listChanged": True}, "resources": {"subscribe": True}},
    )
    async with running_gateway(make_config("fx"), server) as (gateway, client):
        await client.wait_for(lambda: gateway.router.tool_count("fx") == 1)  # its first lists are in
        tools = modern({"notifications": {"toolsListChanged": True, "bogus": True}})
        await client.send({"jsonrpc": "2.0", "id": "t", "method": "subscriptions/listen", "params": tools})
        files = modern({"notifications": {"resourceSubscriptions": ["file:///a"]}})
        await client.send({"jsonrpc": "2.0", "id": "f", "method": "subscriptions/listen", "params": files})

        def acknowledged(subscription: str) -> dict[str, Any] | None:
            return next(
                (n for n in client.notifications if n["method"] == "notifications/subscriptions/acknowledged"
                 and n["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == subscription),
                None,
            )  # fmt: skip

        await client.wait_for(lambda: acknowledged("t") is not None and acknowledged("f") is not None)
        assert acknowledged("t")["params"]["notifications"] == {"toolsListChanged": True}  # type: ignore[index]
        assert acknowledged("f")["params"]["notifications"] == {"resourceSubscriptions": ["file:///a"]}  # type: ignore[index]
        assert server.session.requests("resources/subscribe")[0]["params"]["uri"] == "file:///a"

        server.tools["more"] = echo
        await server.session.notify("notifications/tools/list_changed")
        await server.session.notify("notifications/resources/updated", {"uri": "file:///a"})
        await server.session.notify("notifications/message", {"level": "error", "data": "not asked for"})

        def tagged(method: str) -> list[Any]:
            return [
                n["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"]
                for n in client.notifications
                if n["method"] == method
            ]

        await client.wait_for(lambda: tagged("notifications/resources/updated") == ["f"])
        await client.wait_for(lambda: tagged("notifications/tools/list_changed") == ["t"])
        assert not any(n["method"] == "notifications/message" for n in client.notifications)

        await client.send(
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "f"}}
        )
        await client.wait_for(lambda: bool(server.session.requests("resources/unsubscribe")))
        await server.session.notify("notifications/resources/updated", {"uri": "file:///a"})
        server.tools["added"] = echo  # the gateway re-lists on list_changed: tell clients of a real change
        await server.session.notify("notifications/tools/list_changed")
        await client.wait_for(lambda: tagged("notifications/tools/list_changed") == ["t", "t"])
        assert tagged("notifications/resources/updated") == ["f"]  # the cancelled one gets nothing more
        assert "t" not in client.responses and "f" not in client.responses  # listens are not answered


async def test_an_open_subscription_is_closed_gracefully_when_the_gateway_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_daemon(make_config("fx"), FakeServer("fx")) as (gateway, attach):
        client = await attach()
        listen = modern({"notifications": {"promptsListChanged": True}})
        await client.send({"jsonrpc": "2.0", "id": 9, "method": "subscriptions/listen", "params": listen})
        await client.wait_for(lambda: bool(client.notifications))
        await gateway.end_sessions("shutting down")
        await client.wait_for(lambda: 9 in client.responses)
    closing = client.responses[9]["result"]
    assert closing == {"resultType": "complete", "_meta": {"io.modelcontextprotocol/subscriptionId": 9}}


async def test_subscriptions_listen_without_the_eras_meta_says_what_it_needs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_gateway(make_config("fx"), FakeServer("fx")) as (_, client):
        response = await client.request("subscriptions/listen", {"notifications": {"toolsListChanged": True}})
    assert response["error"]["code"] == -32601
    assert "2026-07-28 method" in response["error"]["message"]


# -- a legacy server's questions toward a 2026-07-28 client on a byte stream (MRTR) -----------------

SAMPLING = {"io.modelcontextprotocol/clientCapabilities": {"sampling": {}}}


async def asks_twice(session: Any, args: dict[str, Any]) -> Any:
    """A legacy server's tool that asks the client's model, then asks again."""
    first = await session.request_client("sampling/createMessage", {"messages": [], "maxTokens": 5})
    second = await session.request_client("sampling/createMessage", {"messages": [], "maxTokens": 6})
    said = [answer.get("result", {}).get("content", {}).get("text", "?") for answer in (first, second)]
    return {"content": [{"type": "text", "text": " and ".join(said)}]}


def sampled(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": {"type": "text", "text": text}, "model": "m"}


async def test_a_legacy_servers_questions_become_input_required_rounds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeServer("fx", tools={"ask": asks_twice})
    async with running_gateway(make_config("fx"), server) as (_, client):
        call = modern({"name": "ask", "arguments": {}}, **SAMPLING)
        first = await client.result("tools/call", call)
        assert first["resultType"] == "input_required"
        ((key, question),) = first["inputRequests"].items()
        assert question == {"method": "sampling/createMessage", "params": {"messages": [], "maxTokens": 5}}
        assert not client.requests  # nothing was asked of the client outside its call's answer

        retry = modern(
            {
                "name": "ask",
                "arguments": {},
                "inputResponses": {key: sampled("yes")},
                "requestState": first["requestState"],
            },
            **SAMPLING,
        )
        second = await client.result("tools/call", retry)
        assert second["resultType"] == "input_required"  # the server asked once more
        ((again, asked),) = second["inputRequests"].items()
        assert again != key and asked["params"]["maxTokens"] == 6

        retry["inputResponses"] = {again: sampled("no")}
        retry["requestState"] = second["requestState"]
        final = await client.result("tools/call", retry)
        assert final == {"resultType": "complete", "content": [{"type": "text", "text": "yes and no"}]}
        assert len(server.session.requests("tools/call")) == 1  # one call upstream, answered twice


async def test_a_retry_with_a_state_the_gateway_no_longer_has_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_gateway(make_config("fx"), FakeServer("fx", tools={"echo": echo})) as (_, client):
        stale = modern(
            {
                "name": "echo",
                "arguments": {},
                "inputResponses": {},
                "requestState": eras.OWN_STATE_PREFIX + "gone",
            }
        )
        response = await client.request("tools/call", stale)
    assert response["error"]["code"] == -32602
    assert "requestState" in response["error"]["message"]


async def test_a_client_without_the_capability_is_not_asked(autojump_clock: trio.testing.MockClock) -> None:
    server = FakeServer("fx", tools={"ask": asks_twice})
    async with running_gateway(make_config("fx"), server) as (_, client):
        result = await client.result("tools/call", modern({"name": "ask", "arguments": {}}))
    assert result["resultType"] == "complete"  # the server was told no (-32601) for both, and said so
    assert result["content"][0]["text"] == "? and ?"


async def test_cancelling_the_retry_cancels_the_call_upstream(autojump_clock: trio.testing.MockClock) -> None:
    async def asks_then_works(session: Any, args: dict[str, Any]) -> Any:
        await session.request_client("elicitation/create", {"message": "sure?", "requestedSchema": {}})
        await trio.sleep_forever()

    server = FakeServer("fx", tools={"slow": asks_then_works})
    capable = {"io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}
    async with running_gateway(make_config("fx"), server) as (_, client):
        first = await client.result("tools/call", modern({"name": "slow", "arguments": {}}, **capable))
        (key,) = first["inputRequests"]
        retry = {"name": "slow", "arguments": {}, "inputResponses": {key: {"action": "accept"}}}
        retry["requestState"] = first["requestState"]
        await client.start("tools/call", modern(retry, **capable), request_id="again")
        await client.wait_for(lambda: len(server.session.requests("tools/call")) == 1)
        await trio.sleep(1)  # the server has its answer and works on
        await client.notify("notifications/cancelled", {"requestId": "again", "reason": "enough"})
        await client.wait_for(lambda: bool(server.session.requests("notifications/cancelled")))
        (cancelled,) = server.session.requests("notifications/cancelled")
        assert cancelled["params"]["requestId"] == server.session.requests("tools/call")[0]["id"]


async def test_a_parked_call_nobody_resumes_is_cancelled_upstream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The same rule on every transport: a call answered input_required waits PARK_SECONDS for
    its retry, then is cancelled upstream and its state forgotten."""
    from watchgate.gateway.era import PARK_SECONDS

    server = FakeServer("fx", tools={"ask": asks_twice})
    async with running_gateway(make_config("fx", request_timeout=3600), server) as (_, client):
        call = modern({"name": "ask", "arguments": {}}, **SAMPLING)
        first = await client.result("tools/call", call)
        await trio.sleep(PARK_SECONDS - 1)
        assert not server.session.requests("notifications/cancelled")
        await trio.sleep(2)
        (cancelled,) = server.session.requests("notifications/cancelled")
        assert cancelled["params"]["requestId"] == server.session.requests("tools/call")[0]["id"]
        (key,) = first["inputRequests"]
        retry = {"name": "ask", "arguments": {}, "inputResponses": {key: sampled("late")}}
        retry["requestState"] = first["requestState"]
        response = await client.request("tools/call", modern(retry, **SAMPLING))
        assert response["error"]["code"] == -32602 and "requestState" in response["error"]["message"]


async def test_a_retry_must_repeat_its_calls_method(autojump_clock: trio.testing.MockClock) -> None:
    server = FakeServer("fx", tools={"ask": asks_twice})
    async with running_gateway(make_config("fx"), server) as (_, client):
        first = await client.result("tools/call", modern({"name": "ask", "arguments": {}}, **SAMPLING))
        (key,) = first["inputRequests"]
        other = {"uri": "file:///x", "inputResponses": {key: sampled("x")}}
        other["requestState"] = first["requestState"]
        response = await client.request("resources/read", modern(other, **SAMPLING))
        assert response["error"]["code"] == -32602
        await client.wait_for(lambda: bool(server.session.requests("notifications/cancelled")))
