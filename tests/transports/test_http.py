"""The Streamable HTTP transport against httpx2's mock transport: what goes on the wire, and
what a server's failures become for the upstream actor."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
import trio
import trio.testing

import watchgate.transports.http as http_module
import watchgate.transports.streamable as streamable_module
from watchgate.config import parse_config
from watchgate.errors import ConfigError, PeerGone, UpstreamStartError
from watchgate.transports.http import HttpConnection, http_connector

URL = "http://127.0.0.1:9/mcp"
INIT = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}'


def _config() -> Any:
    return parse_config(f"proxy:\n  upstream:\n    transport: http\n    url: {URL}\n").proxy.upstreams[0]


@asynccontextmanager
async def connected(handler: Callable[[httpx2.Request], httpx2.Response]) -> AsyncIterator[HttpConnection]:
    async with (
        httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as client,
        trio.open_nursery() as nursery,
    ):
        yield HttpConnection(_config(), client, nursery)
        nursery.cancel_scope.cancel()


async def _next(connection: HttpConnection) -> dict[str, Any]:
    with trio.fail_after(5):
        burst = await connection.receive().receive()
    return json.loads(burst[0])


async def test_the_session_id_and_protocol_version_go_on_every_later_request() -> None:
    seen: list[httpx2.Request] = []

    def server(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if request.method == "DELETE":
            return httpx2.Response(200)
        if request.method == "GET":
            return httpx2.Response(405)  # no stream outside requests: fine
        body = json.loads(request.content)
        if body.get("method") == "initialize":
            result = {"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "s"}}
            answer = {"jsonrpc": "2.0", "id": body["id"], "result": result}
            return httpx2.Response(200, json=answer, headers={"mcp-session-id": "abc"})
        if "id" not in body:
            return httpx2.Response(202)
        stream = f"event: message\ndata: {json.dumps({'jsonrpc': '2.0', 'id': body['id'], 'result': {}})}\n\n"
        return httpx2.Response(200, content=stream.encode(), headers={"content-type": "text/event-stream"})

    async with connected(server) as connection:
        await connection.send([INIT + b"\n"])
        assert (await _next(connection))["result"]["protocolVersion"] == "2025-11-25"
        await connection.send([b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'])
        await connection.send([b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}\n'])
        assert (await _next(connection))["id"] == 2  # an answer as a server-sent event
        await connection.terminate()
    probe, first, *later = seen
    assert json.loads(probe.content)["method"] == "server/discover"  # the 2026-07-28 era asked first
    assert json.loads(first.content)["method"] == "initialize"  # not spoken here: initialize
    assert "mcp-session-id" not in first.headers and "json" in first.headers["accept"]
    assert all(r.headers["mcp-session-id"] == "abc" for r in later)
    assert [r.method for r in later].count("GET") == 1  # asked once, after initialized; 405 ends it
    assert all(r.headers["mcp-protocol-version"] == "2025-11-25" for r in later)
    assert later[-1].method == "DELETE"


async def test_an_http_error_answers_that_call_and_a_lost_session_ends_the_connection() -> None:
    def server(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content or b"{}")
        if body.get("method") == "initialize":
            answer = {"jsonrpc": "2.0", "id": body["id"], "result": {}}
            return httpx2.Response(200, json=answer, headers={"mcp-session-id": "abc"})
        if body.get("method") == "tools/call":
            return httpx2.Response(503, text="overloaded\x1b[2J")
        return httpx2.Response(404)

    async with connected(server) as connection:
        await connection.send([INIT + b"\n"])
        await _next(connection)
        await connection.send([b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{}}\n'])
        refused = await _next(connection)
        assert refused["id"] == 7 and refused["error"]["message"].startswith("127.0.0.1:9 answered HTTP 503")
        assert "\x1b" not in refused["error"]["message"]  # what a server says reaches clients cleaned
        await connection.send([b'{"jsonrpc":"2.0","id":8,"method":"ping"}\n'])
        with trio.fail_after(5):
            assert [burst async for burst in connection.receive()] == []  # the session is gone
        assert str(connection.ending()) == "127.0.0.1:9 ended the session (HTTP 404)"
        assert await connection.wait() is None
        with pytest.raises(PeerGone):
            await connection.send([b'{"jsonrpc":"2.0","id":9,"method":"ping"}\n'])


async def test_a_server_that_cannot_be_reached_ends_the_connection_with_the_reason() -> None:
    def server(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    async with connected(server) as connection:
        await connection.send([INIT + b"\n"])
        with trio.fail_after(5):
            await connection.wait()
        assert str(connection.ending()).startswith("cannot reach 127.0.0.1:9: connection refused")


async def test_what_the_server_says_outside_a_request_comes_on_the_get_stream_and_resumes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gets: list[httpx2.Request] = []

    def server(request: httpx2.Request) -> httpx2.Response:
        if request.method == "GET":
            gets.append(request)
            n = len(gets)
            note = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
            stream = f"id: e{n}\ndata: {json.dumps(note)}\n\n"
            return httpx2.Response(
                200, content=stream.encode(), headers={"content-type": "text/event-stream"}
            )
        return httpx2.Response(202)

    async with connected(server) as connection:
        await connection.send([b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'])
        assert (await _next(connection))["method"] == "notifications/tools/list_changed"
        assert (await _next(connection))["method"] == "notifications/tools/list_changed"  # reopened
    assert "last-event-id" not in gets[0].headers
    assert gets[1].headers["last-event-id"] == "e1"  # resumed after the last event it saw


def _sse(*events: str) -> httpx2.Response:
    return httpx2.Response(
        200, content="".join(events).encode(), headers={"content-type": "text/event-stream"}
    )


async def test_a_request_stream_dropped_before_its_answer_is_resumed_after_the_servers_retry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gets: list[tuple[float, httpx2.Request]] = []

    def server(request: httpx2.Request) -> httpx2.Response:
        if request.method == "GET":
            gets.append((trio.current_time(), request))
            answer = {"jsonrpc": "2.0", "id": 3, "result": {"content": []}}
            return _sse("id: e2\ndata: \n\n", f"id: e3\ndata: {json.dumps(answer)}\n\n")
        return _sse("id: e1\nretry: 2500\ndata: \n\n")  # primed, then closed without the answer

    async with connected(server) as connection:
        started = trio.current_time()
        await connection.send([b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{}}\n'])
        assert (await _next(connection)) == {"jsonrpc": "2.0", "id": 3, "result": {"content": []}}
    [(when, get)] = gets
    assert get.headers["last-event-id"] == "e1"
    assert when - started == pytest.approx(2.5)  # the server's retry, not the gateway's default


async def test_a_request_stream_that_ends_unanswered_and_cannot_be_resumed_answers_with_an_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def server(request: httpx2.Request) -> httpx2.Response:
        if request.method == "GET":
            return httpx2.Response(405)
        note = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1}}
        return _sse(f"data: {json.dumps(note)}\n\n")  # no event id: nothing to resume from

    async with connected(server) as connection:
        await connection.send([b'{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{}}\n'])
        assert (await _next(connection))["method"] == "notifications/progress"
        refused = await _next(connection)
    assert refused["id"] == 4
    assert refused["error"]["message"] == "127.0.0.1:9 closed the stream before answering"


def _with_auth(auth: str) -> Any:
    text = f"proxy:\n  upstream:\n    transport: http\n    url: {URL}\n    auth: {auth}\n"
    return parse_config(text).proxy.upstreams[0]


async def test_a_bearer_token_is_read_at_connect_and_sent_on_every_request(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    seen: list[httpx2.Request] = []

    def server(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(202)

    monkeypatch.setattr(http_module.httpx2, "AsyncClient", _mocked(server))
    monkeypatch.setenv("WG_TEST_TOKEN", "ghp_from_env")
    async with http_connector(_with_auth("{type: bearer, token_env: WG_TEST_TOKEN}")) as connection:
        await connection.send([b'{"jsonrpc":"2.0","method":"notifications/x"}\n'])
        await trio.testing.wait_all_tasks_blocked()
    assert seen[0].headers["authorization"] == "Bearer ghp_from_env"
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file\n")
    async with http_connector(_with_auth(f"{{type: bearer, token_file: {token_file}}}")) as connection:
        await connection.send([b'{"jsonrpc":"2.0","method":"notifications/x"}\n'])
        await trio.testing.wait_all_tasks_blocked()
    assert seen[-1].headers["authorization"] == "Bearer from-a-file"


async def test_a_missing_token_fails_the_start_naming_where_it_was_looked_for(tmp_path: Any) -> None:
    with pytest.raises(
        UpstreamStartError, match=r"auth\.token_env: the variable WG_NOT_SET_ANYWHERE is not set"
    ):
        async with http_connector(_with_auth("{token_env: WG_NOT_SET_ANYWHERE}")):
            pass
    with pytest.raises(UpstreamStartError, match=r"auth.token_file: cannot read .*nope: No such file"):
        async with http_connector(_with_auth(f"{{token_file: {tmp_path / 'nope'}}}")):
            pass


def test_auth_needs_exactly_one_place_for_the_token_and_a_remote_server() -> None:
    with pytest.raises(ConfigError, match="needs exactly one of token_env or token_file"):
        _with_auth("{type: bearer}")
    with pytest.raises(ConfigError, match="'auth' is only for http, sse and websocket upstreams"):
        parse_config("proxy:\n  upstream:\n    command: [x]\n    auth: {token_env: T}\n")


def _mocked(handler: Callable[[httpx2.Request], httpx2.Response]) -> Any:
    real = httpx2.AsyncClient

    def client(**options: Any) -> httpx2.AsyncClient:
        return real(transport=httpx2.MockTransport(handler), **options)

    return client


async def test_tls_trusts_a_private_ca_or_is_switched_off_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    options: list[dict[str, Any]] = []
    real = httpx2.AsyncClient

    def client(**kwargs: Any) -> httpx2.AsyncClient:
        options.append(kwargs)
        return real(transport=httpx2.MockTransport(lambda r: httpx2.Response(202)), **kwargs)

    monkeypatch.setattr(http_module.httpx2, "AsyncClient", client)
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not really a certificate: the mock transport never looks")
    text = f"proxy:\n  upstream:\n    transport: http\n    url: {URL}\n    tls: {{ca_file: {bundle}}}\n"
    async with http_connector(parse_config(text).proxy.upstreams[0]):
        pass
    assert options[-1]["verify"] == str(bundle)
    off = f"proxy:\n  upstream:\n    transport: http\n    url: {URL}\n    tls: {{verify: false}}\n"
    async with http_connector(parse_config(off).proxy.upstreams[0]):
        pass
    assert options[-1]["verify"] is False and "any certificate is accepted" in caplog.text
    missing = text.replace(str(bundle), str(tmp_path / "gone.pem"))
    with pytest.raises(UpstreamStartError, match=r"tls\.ca_file: cannot read .*gone\.pem"):
        async with http_connector(parse_config(missing).proxy.upstreams[0]):
            pass


async def test_a_server_that_forgot_the_session_gets_a_new_one_and_the_message_again() -> None:
    sessions = iter(["s1", "s2"])
    seen: list[tuple[str, str | None]] = []

    def server(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content or b"{}")
        seen.append((body.get("method", request.method), request.headers.get("mcp-session-id")))
        if request.method == "GET":
            return httpx2.Response(405)
        if body.get("method") == "initialize":
            answer = {"jsonrpc": "2.0", "id": body["id"], "result": {"protocolVersion": "2025-11-25"}}
            return httpx2.Response(200, json=answer, headers={"mcp-session-id": next(sessions)})
        if request.headers.get("mcp-session-id") == "s1" and body.get("method") == "tools/list":
            return httpx2.Response(404)  # restarted: it knows no s1
        if "id" not in body:
            return httpx2.Response(202)
        return httpx2.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": {"tools": []}})

    async with connected(server) as connection:
        await connection.send([INIT + b"\n"])
        await _next(connection)
        await connection.send([b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'])
        await connection.send([b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}\n'])
        assert await _next(connection) == {"jsonrpc": "2.0", "id": 2, "result": {"tools": []}}
    posts = [entry for entry in seen if entry[0] not in ("GET", "server/discover")]
    renewal = posts.index(("initialize", None), 1)  # replayed by the connection, not the actor
    assert ("tools/list", "s1") in posts[:renewal]
    assert posts[renewal:] == [
        ("initialize", None),
        ("notifications/initialized", "s2"),
        ("tools/list", "s2"),  # sent again in the new session
    ]


def _legacy_server(
    call: Callable[[httpx2.Request, dict[str, Any]], httpx2.Response],
    *,
    get: Callable[[httpx2.Request], httpx2.Response] = lambda request: httpx2.Response(405),
    server_info: Callable[[httpx2.Request], str] = lambda request: "s",
) -> Callable[[httpx2.Request], httpx2.Response]:
    """A 2025-11-25 server: initialize opens session ``abc``; a notification gets 202, any other
    request (the 2026-07-28 probe included) 404, and ``tools/call`` goes to ``call``."""

    def server(request: httpx2.Request) -> httpx2.Response:
        if request.method == "GET":
            return get(request)
        if request.method == "DELETE":
            return httpx2.Response(200)
        body = json.loads(request.content)
        if body.get("method") == "initialize":
            info = {"name": server_info(request)}
            result = {"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": info}
            answer = {"jsonrpc": "2.0", "id": body["id"], "result": result}
            return httpx2.Response(200, json=answer, headers={"mcp-session-id": "abc"})
        if body.get("method") == "tools/call":
            return call(request, body)
        return httpx2.Response(202 if "id" not in body else 404)

    return server


async def test_a_question_on_a_requests_stream_is_marked_as_that_requests() -> None:
    """A server's request that arrives on the SSE stream of one of the gateway's requests says
    so (``watchgate/related``): the gateway then asks the client whose call that is, never
    another (design.md §5)."""
    question = {"jsonrpc": "2.0", "id": 77, "method": "sampling/createMessage", "params": {"maxTokens": 5}}

    def call(request: httpx2.Request, body: dict[str, Any]) -> httpx2.Response:
        events = [question, {"jsonrpc": "2.0", "id": body["id"], "result": {}}]
        return _sse(*(f"event: message\ndata: {json.dumps(e)}\n\n" for e in events))

    async with connected(_legacy_server(call)) as connection:
        await connection.send([INIT + b"\n"])
        await _next(connection)
        await connection.send([b'{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"x"}}\n'])
        asked = await _next(connection)
        assert asked["params"] == {"maxTokens": 5, "_meta": {"watchgate/related": 42}}
        assert (await _next(connection))["id"] == 42
        await connection.terminate()


async def test_a_get_stream_that_says_retry_0_and_closes_is_not_reopened_in_a_loop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`retry: 0` and an empty stream, again and again: reopened later each time, then left."""
    gets: list[float] = []

    def get(request: httpx2.Request) -> httpx2.Response:
        gets.append(trio.current_time())
        return _sse("retry: 0\n\n")

    async with connected(_legacy_server(lambda request, body: httpx2.Response(202), get=get)) as connection:
        await connection.send([INIT + b"\n"])
        await _next(connection)
        await connection.send([b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'])
        await trio.sleep(3600)
        await connection.terminate()
    assert 1 <= len(gets) <= 6  # not 700 a second
    gaps = [b - a for a, b in itertools.pairwise(gets)]
    assert all(gap >= 0.5 for gap in gaps) and gaps == sorted(gaps)  # floored, then backing off


async def test_an_answer_over_the_bound_is_refused_not_held(monkeypatch: pytest.MonkeyPatch) -> None:
    """As a stdio server's line over 128 MiB is refused, so is an HTTP answer (bound made small)."""
    monkeypatch.setattr(streamable_module, "MAX_ANSWER", 4096)

    def call(request: httpx2.Request, body: dict[str, Any]) -> httpx2.Response:
        text = {"type": "text", "text": "x" * 10_000}
        return httpx2.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": {"content": [text]}})

    async with connected(_legacy_server(call)) as connection:
        await connection.send([INIT + b"\n"])
        await _next(connection)
        await connection.send([b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"big"}}\n'])
        refused = await _next(connection)
        assert refused["id"] == 5 and "answered with more than" in refused["error"]["message"]
        await connection.terminate()


async def test_a_call_the_gateway_cancels_stops_being_read(autojump_clock: trio.testing.MockClock) -> None:
    """A legacy-era call that timed out (the actor sends notifications/cancelled) leaves no task
    reading its response stream and no stream open."""
    closed = trio.Event()

    async def endless() -> AsyncIterator[bytes]:
        try:
            yield b"event: message\ndata: \n\n"
            await trio.sleep_forever()
        finally:
            closed.set()

    def call(request: httpx2.Request, body: dict[str, Any]) -> httpx2.Response:
        return httpx2.Response(200, content=endless(), headers={"content-type": "text/event-stream"})

    async with connected(_legacy_server(call)) as connection:
        await connection.send([INIT + b"\n"])
        await _next(connection)
        await connection.send([b'{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"slow"}}\n'])
        await trio.sleep(60)
        assert not closed.is_set()
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 8}}
        await connection.send([json.dumps(cancel).encode() + b"\n"])
        with trio.fail_after(5):
            await closed.wait()
        await connection.terminate()


async def test_a_token_the_server_repeats_is_redacted_from_what_it_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A configured bearer token that a server quotes back (an error that echoes the request)
    never reaches a client, a log line or a reason."""
    token = "tok-0123456789abcdef"
    monkeypatch.setenv("UPSTREAM_TOKEN", token)
    config = parse_config(
        f"proxy:\n  upstream:\n    transport: http\n    url: {URL}\n    auth: {{type: bearer, token_env: UPSTREAM_TOKEN}}\n"
    ).proxy.upstreams[0]

    server = _legacy_server(
        lambda request, body: httpx2.Response(500, text=f"cannot use {request.headers['authorization']}"),
        server_info=lambda request: request.headers["authorization"],
    )

    async with http_module.open_client(config) as (client, nursery):
        client._transport = httpx2.MockTransport(server)  # the configured client, a mock wire
        connection = HttpConnection(config, client, nursery)
        await connection.send([INIT + b"\n"])
        first = json.dumps(await _next(connection))
        await connection.send([b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"x"}}\n'])
        error = json.dumps(await _next(connection))
        await connection.terminate()
    assert token not in first + error and "[REDACTED]" in first and "[REDACTED]" in error


async def test_a_redirect_is_named_not_followed() -> None:
    """A server answering 307 is not followed (the request and its token stay where the config
    sends them) and the error says where it pointed, not that nothing answered."""

    def server(request: httpx2.Request) -> httpx2.Response:
        if request.method in ("GET", "DELETE"):
            return httpx2.Response(405)
        return httpx2.Response(307, headers={"location": "https://u:pw@elsewhere.test/mcp"})

    async with connected(server) as connection:
        await connection.send([INIT + b"\n"])
        refused = await _next(connection)
        await connection.terminate()
    message = refused["error"]["message"]
    assert "answered HTTP 307, a redirect to https://elsewhere.test/mcp" in message and "pw" not in message
