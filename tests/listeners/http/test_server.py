"""Watchgate's HTTP/1.1 server on its own: what it promises any client, whatever the app.

The timing rules run on in-memory streams under MockClock (a slow client costs no real time);
keep-alive, pipelining and shutdown run on real loopback sockets with deadlines.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from watchgate.listeners.http.server import BODY_TIMEOUT, HEAD_TIMEOUT, IDLE_TIMEOUT, MAX_HEAD, HttpServer
from watchgate.listeners.http.server._connection import Connection

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def echo(scope: Message, receive: Receive, send: Send) -> None:
    """Answers the body it read (a refusal with 413 for a path ``/refuse``, without reading)."""
    if scope["path"] == "/refuse":
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"no"})
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message["body"]
        if not message["more_body"]:
            break
    headers = [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def post(body: bytes, path: str = "/", extra: str = "") -> bytes:
    return f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode() + body


async def read_until_closed(stream: trio.abc.ReceiveStream) -> bytes:
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    return data


@asynccontextmanager
async def memory_connection(app: Any = echo) -> AsyncIterator[trio.abc.Stream]:
    """A client stream to a server connection over memory (for MockClock)."""
    client, server = trio.testing.memory_stream_pair()
    connection = Connection(server, app, scheme="http", server=None, client=None, stopping=lambda: False)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.serve)
        yield client
        nursery.cancel_scope.cancel()


async def test_a_head_that_trickles_past_its_time_gets_408_and_the_connection_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with memory_connection() as client:
        await client.send_all(b"POST / HTTP/1.1\r\nhost: x\r\n")
        started = trio.current_time()
        answer = await read_until_closed(client)
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert trio.current_time() - started == pytest.approx(HEAD_TIMEOUT)


async def test_a_body_that_trickles_past_its_time_gets_408_and_the_app_sees_the_client_gone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[str] = []

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        while (message := await receive())["type"] != "http.disconnect":
            pass
        seen.append(message["type"])
        await send({"type": "http.response.start", "status": 400, "headers": []})  # goes nowhere
        await send({"type": "http.response.body", "body": b"late"})

    async with memory_connection(app) as client:
        await client.send_all(post(b"0123456789")[:-4])
        started = trio.current_time()
        answer = await read_until_closed(client)
    assert answer.startswith(b"HTTP/1.1 408 ") and b"late" not in answer
    assert trio.current_time() - started == pytest.approx(BODY_TIMEOUT)
    assert seen == ["http.disconnect"]


async def test_a_kept_alive_connection_with_no_request_is_closed_quietly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with memory_connection() as client:
        await client.send_all(post(b"one"))
        started = trio.current_time()
        answer = await read_until_closed(client)
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\none")
        assert trio.current_time() - started == pytest.approx(IDLE_TIMEOUT)


async def test_a_body_is_read_as_it_comes_and_a_client_that_leaves_is_told_to_the_app() -> None:
    seen: list[object] = []

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        while (message := await receive())["type"] != "http.disconnect":
            seen.append((message["body"], message["more_body"]))
        seen.append("http.disconnect")

    async with memory_connection(app) as client:
        await client.send_all(post(b"abc")[:-1])
        await trio.testing.wait_all_tasks_blocked()
        await client.send_all(b"c")
        await trio.testing.wait_all_tasks_blocked()
        assert seen == [(b"ab", True), (b"c", False)]  # the last bytes come with the end
        await client.aclose()
        await trio.testing.wait_all_tasks_blocked()
        assert seen[-1] == "http.disconnect"


async def test_a_chunked_body_that_came_whole_is_one_message() -> None:
    seen: list[Message] = []

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        seen.append(await receive())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    chunked = (
        b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    async with memory_connection(app) as client:
        await client.send_all(chunked)
        assert (await client.receive_some(65536)).startswith(b"HTTP/1.1 204 ")
    assert seen == [{"type": "http.request", "body": b"abcde", "more_body": False}]


@pytest.mark.parametrize(
    "rest",
    [b"", b"zz\r\nnot a chunk size\r\n"],  # the client leaves mid-body; the body turns to garbage
)
async def test_a_body_that_breaks_off_is_the_client_gone(rest: bytes) -> None:
    seen: list[object] = []

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        while (message := await receive())["type"] != "http.disconnect":
            seen.append(message["body"])
        seen.append("gone")

    head = b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n"
    async with memory_connection(app) as client:
        await client.send_all(head)
        await trio.testing.wait_all_tasks_blocked()
        if rest:
            await client.send_all(rest)
        else:
            await client.send_eof()
        await trio.testing.wait_all_tasks_blocked()
        assert seen[0] == b"abc" and seen[-1] == "gone"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NOT HTTP\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: nope\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * MAX_HEAD + b"\r\n\r\n", b"431"),
    ],
)
async def test_malformed_and_oversized_heads_get_a_status_and_the_connection_closes(
    request_bytes: bytes, status: bytes
) -> None:
    async with memory_connection() as client:
        await client.send_all(request_bytes)
        answer = await read_until_closed(client)
    assert answer.split(b" ")[1] == status


async def test_expect_100_continue_is_answered_when_the_app_reads_the_body() -> None:
    async with memory_connection() as client:
        await client.send_all(post(b"", extra="expect: 100-continue\r\n").replace(b"length: 0", b"length: 4"))
        interim = await client.receive_some(65536)
        assert interim.startswith(b"HTTP/1.1 100 ")
        await client.send_all(b"body")
        answer = await client.receive_some(65536)
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"body")


async def test_an_app_that_refuses_first_never_asks_for_the_body() -> None:
    async with memory_connection() as client:
        request = post(b"", "/refuse", "expect: 100-continue\r\n").replace(b"length: 0", b"length: 4")
        await client.send_all(request)
        answer = await read_until_closed(client)  # the body never sent: the connection ends
        assert answer.startswith(b"HTTP/1.1 413 ") and b" 100 " not in answer


async def test_a_failing_app_is_500_without_a_traceback_to_the_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(scope: Message, receive: Receive, send: Send) -> None:
        raise ValueError("boom")

    async with memory_connection(broken) as client:
        await client.send_all(post(b"x"))
        answer = await read_until_closed(client)
    assert answer.startswith(b"HTTP/1.1 500 ") and b"boom" not in answer
    assert "application failed" in caplog.text


@asynccontextmanager
async def real_server(app: Any = echo, grace: float = 2.0) -> AsyncIterator[tuple[HttpServer, int]]:
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    server = HttpServer(app, grace=grace)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, [sock])
            yield server, sock.getsockname()[1]
            server.shutdown()


async def test_a_thousand_requests_on_one_kept_alive_connection() -> None:
    async with real_server() as (_, port):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            for n in range(1000):
                await stream.send_all(post(b"%d" % n))
                answer = b""
                while not answer.endswith(b"\r\n\r\n%d" % n):
                    answer += await stream.receive_some(65536)
                assert answer.startswith(b"HTTP/1.1 200 ")


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with real_server() as (_, port):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(post(b"first") + post(b"second") + post(b"third"))
            answers = b""
            while not answers.endswith(b"third"):
                answers += await stream.receive_some(65536)
    assert [answers.index(word) for word in (b"first", b"second", b"third")] == sorted(
        answers.index(word) for word in (b"first", b"second", b"third")
    )
    assert answers.count(b"HTTP/1.1 200 ") == 3


async def test_a_refusal_before_the_body_keeps_the_connection_for_the_next_request() -> None:
    async with real_server() as (_, port):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(post(b"unread", "/refuse"))
            await stream.send_all(post(b"next"))
            answers = b""
            while not answers.endswith(b"next"):
                answers += await stream.receive_some(65536)
    assert answers.startswith(b"HTTP/1.1 413 ") and b"HTTP/1.1 200 " in answers


async def test_a_slow_client_does_not_hold_up_another() -> None:
    async with real_server() as (_, port):
        slow = await trio.open_tcp_stream("127.0.0.1", port)
        await slow.send_all(b"POST / HTTP/1.1\r\nhost: x\r\n")  # and nothing more
        quick = await trio.open_tcp_stream("127.0.0.1", port)
        async with slow, quick:
            await quick.send_all(post(b"quick"))
            answer = b""
            while not answer.endswith(b"quick"):
                answer += await quick.receive_some(65536)


async def test_shutdown_closes_idle_connections_and_cuts_off_unfinished_ones_after_the_grace() -> None:
    started = trio.Event()

    async def endless(scope: Message, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: x\n\n", "more_body": True})
        started.set()
        await trio.sleep_forever()

    async with real_server(endless, grace=0.2) as (server, port):
        idle = await trio.open_tcp_stream("127.0.0.1", port)
        busy = await trio.open_tcp_stream("127.0.0.1", port)
        await busy.send_all(post(b""))
        await started.wait()
        server.shutdown()
        async with idle, busy:
            assert await read_until_closed(idle) == b""
            assert b"data: x" in await read_until_closed(busy)
