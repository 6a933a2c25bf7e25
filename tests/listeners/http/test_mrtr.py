"""A server's questions toward a 2026-07-28 client: input_required, then the retry (MRTR)."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
import pytest
import trio
import trio.testing

from tests.gateway.fakes import FakeServer, FakeSession, make_config, text
from tests.listeners.http.conftest import events, modern_headers, modern_request, serving
from watchgate.gateway.era import _rounds as rounds
from watchgate.listeners.http.sessions import SessionTable
from watchgate.protocol import eras

REPLY = {"role": "assistant", "content": {"type": "text", "text": "42"}, "model": "m"}


async def asks_twice(session: FakeSession, args: dict[str, Any]) -> Any:
    first = await session.request_client("sampling/createMessage", {"messages": [], "maxTokens": 5})
    second = await session.request_client("roots/list", {})
    return text(f"{first['result']['content']['text']} with {len(second['result']['roots'])} roots")


def call(request_id: int, **extra: Any) -> dict[str, Any]:
    request = modern_request(request_id, "tools/call", {"name": "ask", "arguments": {}, **extra})
    request["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = {"sampling": {}, "roots": {}}
    return request


async def post(http: httpx.AsyncClient, url: str, request: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(url, json=request, headers=modern_headers("tools/call", "ask"))
    assert response.status_code == 200, response.text
    return events(response.text)[-1]


async def test_questions_become_input_required_and_the_retry_carries_the_answers() -> None:
    server = FakeServer("fx", tools={"ask": asks_twice})
    async with serving(make_config("fx"), server) as (_, _, url), httpx.AsyncClient() as http:
        with trio.fail_after(10):
            first = await post(http, url, call(1))
            assert first["id"] == 1
            result = first["result"]
            assert result["resultType"] == "input_required"
            ((key, question),) = result["inputRequests"].items()
            assert question["method"] == "sampling/createMessage"
            state = result["requestState"]

            second = await post(http, url, call(2, inputResponses={key: REPLY}, requestState=state))
            result = second["result"]
            assert (second["id"], result["resultType"]) == (2, "input_required")
            ((key, question),) = result["inputRequests"].items()
            assert question["method"] == "roots/list"

            roots = {"roots": [{"uri": "file:///a"}]}
            extra = {key: roots, "not-asked": {}}
            done = await post(http, url, call(3, inputResponses=extra, requestState=result["requestState"]))
        assert done["id"] == 3
        assert done["result"]["resultType"] == "complete"
        assert done["result"]["content"][0]["text"] == "42 with 1 roots"
        assert len(server.session.requests("tools/call")) == 1  # one call upstream, three requests


async def test_an_unknown_request_state_of_the_gateways_is_refused() -> None:
    async with serving(make_config("fx"), FakeServer("fx", tools={"ask": asks_twice})) as (_, _, url):
        async with httpx.AsyncClient() as http:
            request = call(1, inputResponses={}, requestState=eras.OWN_STATE_PREFIX + "forged")
            response = await http.post(url, json=request, headers=modern_headers("tools/call", "ask"))
        assert response.status_code == 400
        assert response.json()["error"]["code"] == -32602
        assert "requestState" in response.json()["error"]["message"]


async def test_a_servers_own_request_state_goes_upstream_untouched() -> None:
    """A 2026-07-28 server's input_required reached the client as it was (transports/modern/):
    the retry carries that server's state, which is the server's to check, not the gateway's."""

    async def done(session: FakeSession, args: dict[str, Any]) -> Any:
        return text("done")

    server = FakeServer("fx", tools={"ask": done})
    async with serving(make_config("fx"), server) as (_, _, url), httpx.AsyncClient() as http:
        with trio.fail_after(10):
            answer = await post(http, url, call(1, inputResponses={"k": REPLY}, requestState="sealed:abc"))
    assert answer["result"]["content"][0]["text"] == "done"
    (upstream,) = server.session.requests("tools/call")
    assert upstream["params"]["requestState"] == "sealed:abc"
    assert upstream["params"]["inputResponses"] == {"k": REPLY}
    assert server.session.relayed == {upstream["id"]: {"sampling": {}, "roots": {}}}


async def test_a_call_nobody_resumes_is_cancelled_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rounds, "PARK_SECONDS", 0.05)
    server = FakeServer("fx", tools={"ask": asks_twice})
    async with serving(make_config("fx"), server) as (_, _, url), httpx.AsyncClient() as http:
        first = await post(http, url, call(1))
        assert first["result"]["resultType"] == "input_required"
        with trio.fail_after(5):
            while not server.session.requests("notifications/cancelled"):
                await trio.sleep(0.01)
        retry = call(2, inputResponses={}, requestState=first["result"]["requestState"])
        response = await http.post(url, json=retry, headers=modern_headers("tools/call", "ask"))
        assert response.status_code == 400  # expired


async def test_a_call_that_ends_while_the_client_answers_gives_the_retry_its_answer() -> None:
    release = trio.Event()

    async def asks_without_waiting(session: FakeSession, args: dict[str, Any]) -> Any:
        question = {"messages": [], "maxTokens": 5}
        await session.send(
            {"jsonrpc": "2.0", "id": "q1", "method": "sampling/createMessage", "params": question}
        )
        await release.wait()
        return text("done without it")

    server = FakeServer("fx", tools={"ask": asks_without_waiting})
    async with serving(make_config("fx"), server) as (gateway, _, url), httpx.AsyncClient() as http:
        with trio.fail_after(10):
            first = await post(http, url, call(1))
            ((key, _),) = first["result"]["inputRequests"].items()
            release.set()  # the call's answer comes while the client thinks
            while gateway.upstreams["fx"].in_flight:  # as ps shows it: the call has its answer
                await trio.sleep(0.01)
            await trio.testing.wait_all_tasks_blocked()  # ... and it reached the parked request
            retry = call(2, inputResponses={key: REPLY}, requestState=first["result"]["requestState"])
            done = await post(http, url, retry)
        assert (done["id"], done["result"]["content"][0]["text"]) == (2, "done without it")


async def test_a_call_that_parks_while_the_listener_stops_is_not_kept() -> None:
    """The session nursery a parked call's actor would run in is gone: nothing is started (the
    request is ended instead, its call cancelled upstream)."""
    table = SessionTable(None, limit=4, idle_timeout=60)  # type: ignore[arg-type]  # never reached

    async def keep() -> None:
        await trio.sleep_forever()

    assert not table.spawn(keep)  # not running yet
    async with trio.open_nursery() as nursery:
        await nursery.start(table.run)
        assert table.spawn(keep)  # runs until the table stops
        nursery.cancel_scope.cancel()
    assert not table.spawn(keep)  # stopped
