"""2026-07-28 clients over HTTP: stateless requests, header checks, cancellation by closing."""

from __future__ import annotations

import gc
import json
import logging
from typing import Any

import httpx2 as httpx
import pytest
import trio

from tests.gateway.fakes import FakeError, FakeServer, FakeSession, echo, hang, make_config, text
from tests.listeners.http.conftest import (
    MODERN,
    events,
    first_line,
    modern_headers,
    modern_request,
    read_lines,
    serving,
)


def fixture() -> FakeServer:
    return FakeServer("fx", tools={"echo": echo, "hang": hang}, instructions="be nice")


async def test_discover_names_the_versions_and_the_union_of_capabilities() -> None:
    async with serving(make_config("fx"), fixture()) as (_, _, url), httpx.AsyncClient() as http:
        response = await http.post(
            url, json=modern_request(1, "server/discover"), headers=modern_headers("server/discover")
        )
        assert response.status_code == 200
        result = response.json()["result"]
        assert result["resultType"] == "complete"
        assert result["supportedVersions"] == [MODERN]
        assert "tools" in result["capabilities"]
        assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "watchgate"
        assert result["instructions"] == "be nice"
        assert (result["ttlMs"], result["cacheScope"]) == (0, "private")


async def test_a_call_stands_alone_and_its_result_says_its_type() -> None:
    server = fixture()
    async with serving(make_config("fx"), server) as (gateway, _, url), httpx.AsyncClient() as http:
        call = modern_request(7, "tools/call", {"name": "echo", "arguments": {"text": "hi"}})
        response = await http.post(url, json=call, headers=modern_headers("tools/call", "echo"))
        (answer,) = events(response.text)
        assert answer["id"] == 7
        assert answer["result"]["resultType"] == "complete"
        assert answer["result"]["content"][0]["text"] == "hi"
        upstream = server.session.requests("tools/call")[-1]["params"]
        # the client's connection-owned keys stay at the gateway; no session was left behind
        assert not any(k.startswith("io.modelcontextprotocol/") for k in upstream.get("_meta", {}))
        with trio.fail_after(10):  # the request's client goes once its answer is out
            while gateway.sessions():  # nothing to wait on but the gateway's table
                await trio.sleep(0.01)


async def test_a_request_leaves_nothing_to_the_cycle_collector() -> None:
    """A request's client actor, its era and its channel are freed by reference counting as it
    ends: a reference cycle per request left every request's objects to the cyclic garbage
    collector, whose work came to ~9 % of the gateway's CPU under load."""
    server = fixture()
    async with serving(make_config("fx"), server) as (gateway, _, url), httpx.AsyncClient() as http:
        call = modern_request(7, "tools/call", {"name": "echo", "arguments": {"text": "hi"}})
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)  # what any collection finds unreachable is kept to look at
        try:
            for _ in range(3):
                response = await http.post(url, json=call, headers=modern_headers("tools/call", "echo"))
                assert response.status_code == 200
            with trio.fail_after(10):
                while gateway.sessions():  # the requests' clients are gone
                    await trio.sleep(0.01)
            gc.collect()
            cyclic = {type(o).__name__ for o in gc.garbage} & {"ClientActor", "ModernEra", "RequestChannel"}
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert cyclic == set()


async def test_an_answer_that_comes_first_is_json_with_its_status_and_progress_makes_a_stream() -> None:
    """A client must take either (spec): JSON lets the status say what the answer is, and only
    a call that says something before its answer needs a stream."""

    async def needs_sampling(session: FakeSession, args: dict[str, Any]) -> Any:
        raise FakeError(
            -32021, "MissingRequiredClientCapabilityError", {"requiredCapabilities": {"sampling": {}}}
        )

    async def steps(session: FakeSession, args: dict[str, Any]) -> Any:
        token = session.requests("tools/call")[-1]["params"]["_meta"]["progressToken"]  # the gateway's own
        await session.notify("notifications/progress", {"progressToken": token, "progress": 1})
        return text("done")

    server = FakeServer("fx", tools={"echo": echo, "needs": needs_sampling, "steps": steps})
    async with serving(make_config("fx"), server) as (_, _, url), httpx.AsyncClient() as http:
        call = modern_request(1, "tools/call", {"name": "echo", "arguments": {"text": "hi"}})
        quick = await http.post(url, json=call, headers=modern_headers("tools/call", "echo"))
        assert (quick.status_code, quick.headers["content-type"]) == (200, "application/json")
        assert quick.json()["result"]["content"][0]["text"] == "hi"

        call = modern_request(2, "tools/call", {"name": "needs", "arguments": {}})
        refused = await http.post(url, json=call, headers=modern_headers("tools/call", "needs"))
        assert refused.status_code == 400  # MissingRequiredClientCapability: 400 on HTTP (spec)
        assert refused.json()["error"]["data"] == {"requiredCapabilities": {"sampling": {}}}

        params = {"name": "steps", "arguments": {}, "_meta": {"progressToken": "p"}}
        call = modern_request(3, "tools/call", params)
        streamed = await http.post(url, json=call, headers=modern_headers("tools/call", "steps"))
        assert streamed.headers["content-type"].startswith("text/event-stream"), streamed.text
        progress, answer = events(streamed.text)
        assert progress["method"] == "notifications/progress" and progress["params"]["progressToken"] == "p"
        assert answer["result"]["content"][0]["text"] == "done"


async def test_lists_carry_cache_hints_and_json_is_answered_as_json() -> None:
    async with serving(make_config("fx"), fixture()) as (_, _, url), httpx.AsyncClient() as http:
        headers = {**modern_headers("tools/list"), "accept": "application/json"}
        response = await http.post(url, json=modern_request(2, "tools/list"), headers=headers)
        assert response.headers["content-type"] == "application/json"
        result = response.json()["result"]
        assert [t["name"] for t in result["tools"]] == ["echo", "hang"]
        assert (result["resultType"], result["ttlMs"], result["cacheScope"]) == ("complete", 0, "private")


async def test_headers_that_do_not_match_the_body_are_refused() -> None:
    async with serving(make_config("fx"), fixture()) as (_, _, url), httpx.AsyncClient() as http:
        call = modern_request(3, "tools/call", {"name": "echo", "arguments": {}})
        wrong_name = await http.post(url, json=call, headers=modern_headers("tools/call", "other"))
        assert (wrong_name.status_code, wrong_name.json()["error"]["code"]) == (400, -32020)
        assert wrong_name.json()["id"] == 3
        wrong_method = await http.post(url, json=call, headers=modern_headers("tools/list"))
        assert wrong_method.json()["error"]["code"] == -32020
        no_version = {
            k: v for k, v in modern_headers("tools/call", "echo").items() if k != "mcp-protocol-version"
        }
        missing = await http.post(
            url, json=call, headers={**no_version, "mcp-protocol-version": "2026-01-01"}
        )
        assert missing.json()["error"]["code"] == -32020  # header and _meta disagree


async def test_an_unsupported_version_is_told_what_is_supported() -> None:
    async with serving(make_config("fx"), fixture()) as (_, _, url), httpx.AsyncClient() as http:
        request = modern_request(4, "tools/list")
        request["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2030-01-01"
        headers = {**modern_headers("tools/list"), "mcp-protocol-version": "2030-01-01"}
        response = await http.post(url, json=request, headers=headers)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == -32022
        assert error["data"]["supported"] == [MODERN]


async def test_an_unknown_method_is_404_with_method_not_found() -> None:
    async with serving(make_config("fx"), fixture()) as (_, _, url), httpx.AsyncClient() as http:
        response = await http.post(
            url, json=modern_request(5, "nope/nope"), headers=modern_headers("nope/nope")
        )
        assert (response.status_code, response.json()["error"]["code"]) == (404, -32601)


async def test_closing_the_stream_cancels_the_call_upstream(caplog: pytest.LogCaptureFixture) -> None:
    """…and while it runs, the request is a client `ps --clients` shows (with its address); its
    end is no news in the log (one line per stateless request would say nothing)."""
    server = fixture()
    async with serving(make_config("fx"), server) as (gateway, _, url), httpx.AsyncClient() as http:
        call = modern_request(6, "tools/call", {"name": "hang", "arguments": {}})

        async def call_and_wait() -> None:
            async with http.stream(
                "POST", url, json=call, headers=modern_headers("tools/call", "hang")
            ) as stream:
                await first_line(stream, lambda line: False)

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(call_and_wait)
                while not server.sessions or not server.session.requests("tools/call"):
                    await trio.sleep(0.01)
                (request,) = gateway.sessions()
                assert request.one_request and (request.peer or "").startswith("http 127.0.0.1:")
                nursery.cancel_scope.cancel()  # the client gives up: its stream closes
            while not server.session.requests("notifications/cancelled"):
                await trio.sleep(0.01)
        cancelled = server.session.requests("notifications/cancelled")[0]["params"]
        assert cancelled["requestId"] == server.session.requests("tools/call")[0]["id"]
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and "disconnected" in r.getMessage()]


async def test_a_modern_client_sends_no_notifications_and_no_get() -> None:
    async with serving(make_config("fx"), fixture()) as (_, _, url), httpx.AsyncClient() as http:
        note = {"jsonrpc": "2.0", "method": "notifications/initialized", "params": {}}
        response = await http.post(url, json=note, headers=modern_headers("notifications/initialized"))
        assert response.status_code == 400


async def test_a_subscription_is_acknowledged_then_gets_what_it_asked_for() -> None:
    server = fixture()
    async with serving(make_config("fx"), server) as (_, _, url), httpx.AsyncClient() as http:
        await http.post(url, json=modern_request(1, "tools/list"), headers=modern_headers("tools/list"))
        listen = modern_request(
            "sub-1", "subscriptions/listen", {"notifications": {"toolsListChanged": True, "bogus": True}}
        )
        seen: list[dict[str, Any]] = []

        async def take(line: str) -> bool:
            if line.startswith("data:"):
                seen.append(json.loads(line[5:]))
                if len(seen) == 1:  # acknowledged: now the list changes, and a log message passes by
                    server.tools["added"] = echo
                    await server.session.notify("notifications/message", {"level": "info", "data": "x"})
                    await server.session.notify("notifications/tools/list_changed")
            return len(seen) < 2

        headers = modern_headers("subscriptions/listen")
        async with http.stream("POST", url, json=listen, headers=headers) as stream:
            with trio.fail_after(5):
                await read_lines(stream, take)
        ack, changed = seen
        assert ack["method"] == "notifications/subscriptions/acknowledged"
        assert ack["params"]["notifications"] == {"toolsListChanged": True}  # what it honours
        assert ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "sub-1"
        assert changed["method"] == "notifications/tools/list_changed"
        assert changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "sub-1"


async def test_a_subscription_the_gateway_ends_is_answered_before_it_closes() -> None:
    server = fixture()
    async with serving(make_config("fx"), server) as (gateway, _, url), httpx.AsyncClient() as http:
        listen = modern_request(2, "subscriptions/listen", {"notifications": {"promptsListChanged": True}})
        seen: list[dict[str, Any]] = []

        async def take(line: str) -> bool:
            if line.startswith("data:"):
                seen.append(json.loads(line[5:]))
                if len(seen) == 1:
                    await gateway.end_sessions("shutting down")
            return True

        async with http.stream(
            "POST", url, json=listen, headers=modern_headers("subscriptions/listen")
        ) as stream:
            with trio.fail_after(5):
                await read_lines(stream, take)
        assert seen[-1]["id"] == 2
        assert seen[-1]["result"]["resultType"] == "complete"


async def test_a_subscription_to_resources_is_acknowledged_for_what_could_be_subscribed() -> None:
    caps = {"tools": {}, "resources": {"subscribe": True}}
    fx = FakeServer("fx", capabilities=caps, resources=["file:///a"])
    other = FakeServer("other", capabilities=caps)
    async with serving(make_config("fx", "other"), fx, other) as (_, _, url), httpx.AsyncClient() as http:
        wanted = {"resourceSubscriptions": ["fx+file:///a", "nobody+x://y"]}
        listen = modern_request(9, "subscriptions/listen", {"notifications": wanted})
        seen: list[dict[str, Any]] = []

        async def take(line: str) -> bool:
            if line.startswith("data:"):
                seen.append(json.loads(line[5:]))
                if len(seen) == 1:
                    assert fx.session.requests("resources/subscribe")[0]["params"]["uri"] == "file:///a"
                    await fx.session.notify("notifications/resources/updated", {"uri": "file:///other"})
                    await fx.session.notify("notifications/resources/updated", {"uri": "file:///a"})
            return len(seen) < 2

        async with http.stream(
            "POST", url, json=listen, headers=modern_headers("subscriptions/listen")
        ) as stream:
            with trio.fail_after(5):
                await read_lines(stream, take)
        ack, updated = seen
        assert ack["params"]["notifications"] == {"resourceSubscriptions": ["fx+file:///a"]}
        assert updated["method"] == "notifications/resources/updated"
        assert updated["params"]["uri"] == "fx+file:///a"
        assert updated["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == 9


async def test_a_client_chooses_its_profile_on_the_url_or_in_a_header() -> None:
    import yaml

    from watchgate.config import parse_config

    upstreams = [{"name": "fx", "command": ["fake"]}, {"name": "other", "command": ["fake"]}]
    document = {
        "proxy": {"startup_wait": 15, "upstreams": upstreams},
        "profiles": {"fx-only": {"servers": ["fx"]}},
    }
    config = parse_config(yaml.safe_dump(document))
    servers = fixture(), FakeServer("other", tools={"echo": echo})
    async with serving(config, *servers) as (_, _, url), httpx.AsyncClient() as http:
        request = modern_request(1, "tools/list")
        everything = await http.post(url, json=request, headers=modern_headers("tools/list"))
        assert len(everything.json()["result"]["tools"]) == 3
        profiled = await http.post(
            f"{url}?profile=fx-only", json=request, headers=modern_headers("tools/list")
        )
        assert sorted(t["name"] for t in profiled.json()["result"]["tools"]) == ["fx__echo", "fx__hang"]
        headed = {**modern_headers("tools/list"), "watchgate-profile": "fx-only"}
        assert len((await http.post(url, json=request, headers=headed)).json()["result"]["tools"]) == 2
        unknown = await http.post(f"{url}?profile=nope", json=request, headers=modern_headers("tools/list"))
        assert unknown.status_code == 400
        assert unknown.json()["error"]["message"] == "unknown profile 'nope' (known: fx-only)"
