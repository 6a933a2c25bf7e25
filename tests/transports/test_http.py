"""The Streamable HTTP transport against httpx2's mock transport: what goes on the wire, and
what a server's failures become for the upstream actor."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
import trio

from watchgate.config import parse_config
from watchgate.errors import PeerGone
from watchgate.transports.http import HttpConnection

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
        await connection.send(INIT + b"\n")
        assert (await _next(connection))["result"]["protocolVersion"] == "2025-11-25"
        await connection.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        await connection.send(b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}\n')
        assert (await _next(connection))["id"] == 2  # an answer as a server-sent event
        await connection.terminate()
    first, *later = seen
    assert "mcp-session-id" not in first.headers and "json" in first.headers["accept"]
    assert all(r.headers["mcp-session-id"] == "abc" for r in later)
    assert all(r.headers["mcp-protocol-version"] == "2025-11-25" for r in later)
    assert later[-1].method == "DELETE"


async def test_an_http_error_answers_that_call_and_a_lost_session_ends_the_connection() -> None:
    def server(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        if body.get("method") == "initialize":
            answer = {"jsonrpc": "2.0", "id": body["id"], "result": {}}
            return httpx2.Response(200, json=answer, headers={"mcp-session-id": "abc"})
        if body.get("method") == "tools/call":
            return httpx2.Response(503, text="overloaded\x1b[2J")
        return httpx2.Response(404)

    async with connected(server) as connection:
        await connection.send(INIT + b"\n")
        await _next(connection)
        await connection.send(b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{}}\n')
        refused = await _next(connection)
        assert refused["id"] == 7 and refused["error"]["message"].startswith("127.0.0.1:9 answered HTTP 503")
        assert "\x1b" not in refused["error"]["message"]  # what a server says reaches clients cleaned
        await connection.send(b'{"jsonrpc":"2.0","id":8,"method":"ping"}\n')
        with trio.fail_after(5):
            assert [burst async for burst in connection.receive()] == []  # the session is gone
        assert connection.describe_exit() == "127.0.0.1:9 ended the session (HTTP 404)"
        assert await connection.wait() is None
        with pytest.raises(PeerGone):
            await connection.send(b'{"jsonrpc":"2.0","id":9,"method":"ping"}\n')


async def test_a_server_that_cannot_be_reached_ends_the_connection_with_the_reason() -> None:
    def server(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    async with connected(server) as connection:
        await connection.send(INIT + b"\n")
        with trio.fail_after(5):
            await connection.wait()
        assert connection.describe_exit().startswith("cannot reach 127.0.0.1:9: connection refused")
