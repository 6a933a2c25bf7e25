"""2025-11-25 clients over Streamable HTTP: sessions, streams, resumption, and refusals."""

from __future__ import annotations

import json
from typing import Any

import httpx2 as httpx
import trio

from tests.gateway.fakes import FakeServer, FakeSession, echo, hang, make_config, text
from tests.listeners.http.conftest import (
    SSE_ACCEPT,
    LegacyClient,
    events,
    first_line,
    modern_headers,
    modern_request,
    read_lines,
    serving,
    tool_call,
)


async def progress_then_answer(session: FakeSession, args: dict[str, Any]) -> Any:
    token = session.requests("tools/call")[-1]["params"]["_meta"]["progressToken"]  # the gateway's own
    await session.notify("notifications/progress", {"progressToken": token, "progress": 1, "total": 2})
    return text("done")


async def asks_the_model(session: FakeSession, args: dict[str, Any]) -> Any:
    answer = await session.request_client("sampling/createMessage", {"messages": [], "maxTokens": 5})
    return text(answer["result"]["content"]["text"])


def fixture() -> FakeServer:
    return FakeServer(
        "fx", tools={"echo": echo, "hang": hang, "progress": progress_then_answer, "sample": asks_the_model}
    )


async def test_a_session_answers_on_the_requests_stream() -> None:
    async with serving(make_config("fx"), fixture()) as (_, _, url), httpx.AsyncClient() as http:
        client = LegacyClient(http, url)
        await client.initialize()
        tools = await client.request("tools/list")
        assert {t["name"] for t in tools["result"]["tools"]} == {"echo", "hang", "progress", "sample"}
        called = await client.request("tools/call", {"name": "echo", "arguments": {"text": "hi"}})
        assert called["result"]["content"][0]["text"] == "hi"


async def test_an_answer_that_comes_first_is_json() -> None:
    async with serving(make_config("fx"), fixture()) as (_, _, url), httpx.AsyncClient() as http:
        client = LegacyClient(http, url)
        await client.initialize()
        response = await client.post({"jsonrpc": "2.0", "id": 7, "method": "tools/list"})
        assert response.headers["content-type"] == "application/json"
        assert response.headers["content-length"] == str(len(response.content))  # not chunked
        assert response.headers["mcp-session-id"] == client.session
        assert response.json()["id"] == 7 and len(response.json()["result"]["tools"]) == 4


async def test_the_stream_is_primed_and_its_events_have_ids() -> None:
    async with serving(make_config("fx"), fixture()) as (_, _, url), httpx.AsyncClient() as http:
        client = LegacyClient(http, url)
        await client.initialize()
        call = {"name": "progress", "arguments": {}, "_meta": {"progressToken": "tok-7"}}
        response = await client.post({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": call})
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        blocks = [b for b in response.text.split("\n\n") if b.strip()]
        primed, progress, answer = (b.split("\n") for b in blocks)
        assert primed[0].endswith("-0") and primed[-1] == "data: "  # an id to resume from, no message
        assert progress[0] == primed[0][:-1] + "1" and answer[0] == primed[0][:-1] + "2"


async def test_a_client_that_takes_only_json_gets_json() -> None:
    async with serving(make_config("fx"), fixture()) as (_, _, url), httpx.AsyncClient() as http:
        client = LegacyClient(http, url)
        await client.initialize()
        response = await http.post(
            url,
            json={
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": "j"}},
            },
            headers={**client.headers(), "accept": "application/json"},
        )
        assert response.headers["content-type"] == "application/json"
        assert response.json()["result"]["content"][0]["text"] == "j"


async def test_progress_comes_on_the_stream_of_its_request() -> None:
    async with serving(make_config("fx"), fixture()) as (_, _, url), httpx.AsyncClient() as http:
        client = LegacyClient(http, url)
        await client.initialize()
        call = {"name": "progress", "arguments": {"token": "t"}, "_meta": {"progressToken": "tok-1"}}
        response = await client.post({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": call})
        progress, answer = events(response.text)
        assert progress["method"] == "notifications/progress"
        assert progress["params"]["progressToken"] == "tok-1"
        assert answer["id"] == 5


async def test_a_server_request_reaches_the_client_and_its_answer_the_server() -> None:
    async with serving(make_config("fx"), fixture()) as (_, _, url), httpx.AsyncClient() as http:
        client = LegacyClient(http, url)
        await client.initialize(capabilities={"sampling": {}})
        call = tool_call(9, "sample")
        seen: list[str] = []

        async def take(line: str) -> bool:
            seen.append(line)
            if "sampling/createMessage" in line:
                asked = json.loads(line[5:])
                reply = {"role": "assistant", "content": {"type": "text", "text": "42"}, "model": "m"}
                posted = await client.post({"jsonrpc": "2.0", "id": asked["id"], "result": reply})
                assert posted.status_code == 202
            return True

        async with http.stream("POST", url, json=call, headers=client.headers()) as stream:
            await read_lines(stream, take)
        rest = "\n".join(seen)
        assert events(rest)[-1]["result"]["content"][0]["text"] == "42"


async def test_the_get_stream_carries_list_changes_and_resumes_after_a_drop() -> None:
    server = fixture()
    async with serving(make_config("fx"), server) as (_, _, url), httpx.AsyncClient() as http:
        client = LegacyClient(http, url)
        await client.initialize()
        await client.request("tools/list")
        headers = {**client.headers(), "accept": "text/event-stream"}
        async with http.stream("GET", url, headers=headers) as stream:
            second = await http.get(url, headers=headers)
            assert second.status_code == 409  # one reader of a stream at a time
            server.tools["added"] = echo  # the gateway announces a change only when there is one
            await server.session.notify("notifications/tools/list_changed")
            await first_line(stream, lambda line: "list_changed" in line)
        # the first change was read; the second comes while nobody reads: the resumed stream has it
        server.tools["added-too"] = echo
        await server.session.notify("notifications/tools/list_changed")
        resume = {**headers, "last-event-id": "0-1"}
        async with http.stream("GET", url, headers=resume) as resumed:
            line = await first_line(resumed, lambda line: line.startswith("data:"))
            assert "tools/list_changed" in line


async def test_a_dropped_request_stream_is_not_a_cancellation() -> None:
    async def slow(session: FakeSession, args: dict[str, Any]) -> Any:
        await session.server.started.wait()
        return text("late")

    server = FakeServer("fx", tools={"slow": slow})
    async with serving(make_config("fx"), server) as (_, _, url), httpx.AsyncClient() as http:
        client = LegacyClient(http, url)
        await client.initialize()
        call = tool_call(4, "slow")
        async with http.stream("POST", url, json=call, headers=client.headers()) as stream:
            primed = (await first_line(stream, lambda line: line.startswith("id:")))[3:].strip()
        server.started.set()  # the answer comes after the client went away
        headers = {**client.headers(), "accept": "text/event-stream", "last-event-id": primed}
        resumed = await http.get(url, headers=headers)
        assert events(resumed.text)[-1]["result"]["content"][0]["text"] == "late"
        assert not server.session.requests("notifications/cancelled")


async def test_a_cancellation_posted_in_the_session_reaches_the_server_after_its_request() -> None:
    """The request and its cancellation are each read in their POST's own task (the session's
    actor is idle): the cancellation never overtakes its request."""
    server = fixture()
    async with serving(make_config("fx"), server) as (_, _, url), httpx.AsyncClient() as http:
        client = LegacyClient(http, url)
        await client.initialize()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.post, tool_call(9, "hang"))  # a cancelled call is not answered
            with trio.fail_after(5):
                while not server.sessions or not server.session.requests("tools/call"):
                    await trio.sleep(0.01)
            cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}}
            assert (await client.post(cancel)).status_code == 202
            with trio.fail_after(5):
                while not server.session.requests("notifications/cancelled"):
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
        [forwarded] = server.session.requests("notifications/cancelled")
        assert forwarded["params"]["requestId"] == server.session.requests("tools/call")[-1]["id"]


async def test_delete_ends_the_session_and_cancels_what_it_had_in_flight() -> None:
    server = fixture()
    async with serving(make_config("fx"), server) as (gateway, _, url), httpx.AsyncClient() as http:
        client = LegacyClient(http, url)
        await client.initialize()
        call = tool_call(4, "hang")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.post, call)
            while not server.sessions or not server.session.requests("tools/call"):
                await trio.sleep(0.01)
            deleted = await http.delete(url, headers=client.headers())
            assert deleted.status_code == 204
        while not server.session.requests("notifications/cancelled"):
            await trio.sleep(0.01)
        after = await client.post({"jsonrpc": "2.0", "id": 5, "method": "tools/list"})
        assert after.status_code == 404
        assert gateway.sessions() == []


async def test_requests_without_a_session_or_with_an_unknown_one_are_refused() -> None:
    async with serving(make_config("fx"), fixture()) as (_, _, url), httpx.AsyncClient() as http:
        headers = {"accept": SSE_ACCEPT, "content-type": "application/json"}
        missing = await http.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers
        )
        assert missing.status_code == 400
        assert "initialize" in missing.json()["error"]["message"]
        unknown = await http.post(
            url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={**headers, "mcp-session-id": "nope"},
        )
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == -32600


async def test_bad_bodies_get_a_status_and_a_json_rpc_error() -> None:
    async with (
        serving(make_config("fx"), fixture(), max_body=2048) as (_, _, url),
        httpx.AsyncClient() as http,
    ):
        headers = {"accept": SSE_ACCEPT, "content-type": "application/json"}
        garbage = await http.post(url, content=b"{not json", headers=headers)
        assert (garbage.status_code, garbage.json()["error"]["code"]) == (400, -32700)
        batch = await http.post(url, content=b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', headers=headers)
        assert (batch.status_code, batch.json()["error"]["code"]) == (400, -32600)
        big = await http.post(url, content=b'{"x":"' + b"a" * 4096 + b'"}', headers=headers)
        assert big.status_code == 413
        wrong_type = await http.post(url, content=b"{}", headers={**headers, "content-type": "text/plain"})
        assert wrong_type.status_code == 415
        put = await http.put(url, content=b"{}", headers=headers)
        assert put.status_code == 405
        elsewhere = await http.post(url + "/other", content=b"{}", headers=headers)
        assert elsewhere.status_code == 404


async def test_sessions_nobody_uses_make_room_and_only_busy_ones_are_kept() -> None:
    """One client opening sessions without end locks nobody out: an idle session makes room,
    first one that never made a request after its initialize; only when every session is
    busy is a new one refused (503)."""
    server = fixture()
    settings = {"max_sessions": 3, "max_sessions_per_peer": 3}
    async with serving(make_config("fx"), server, **settings) as (_, _, url), httpx.AsyncClient() as http:
        used = LegacyClient(http, url)
        await used.initialize()
        await used.request("tools/list")  # a client that works: kept while others were never used
        hoarded = []
        for _ in range(10):  # the flood: initialize, then nothing
            client = LegacyClient(http, url)
            await client.initialize()
            hoarded.append(client)
        assert (await used.post({"jsonrpc": "2.0", "id": 9, "method": "tools/list"})).status_code == 200
        assert (await hoarded[0].post({"jsonrpc": "2.0", "id": 9, "method": "tools/list"})).status_code == 404
        assert (
            await hoarded[-1].post({"jsonrpc": "2.0", "id": 9, "method": "tools/list"})
        ).status_code == 200

        async with trio.open_nursery() as nursery:  # every session busy: now a new one must wait
            for n, client in enumerate((used, hoarded[-2], hoarded[-1])):
                nursery.start_soon(client.post, tool_call(100 + n, "hang"))
            while not server.sessions or len(server.session.requests("tools/call")) < 3:
                await trio.sleep(0.01)
            late = LegacyClient(http, url)
            init = {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "x", "version": "1"},
            }
            refused = await late.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init})
            assert refused.status_code == 503 and "all busy" in refused.text
            nursery.cancel_scope.cancel()


async def test_a_2026_request_inside_a_session_is_refused_not_served_around_its_profile() -> None:
    """A session opened with a profile must not be stepped around by one request marked as the
    stateless revision and sent with the session's id."""
    async with serving(make_config("fx"), fixture()) as (_, _, url), httpx.AsyncClient() as http:
        client = LegacyClient(http, url)
        await client.initialize()
        call = modern_request(3, "tools/call", {"name": "echo", "arguments": {"text": "x"}})
        refused = await http.post(
            url,
            json=call,
            headers={**modern_headers("tools/call", "echo"), "mcp-session-id": client.session or ""},
        )
        assert refused.status_code == 400 and "belongs to no session" in refused.text
