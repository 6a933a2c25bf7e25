"""Legacy HTTP+SSE (MCP 2024-11-05): ``transport: sse``, and ``transport: http`` falling back to
it by itself when a server refuses the Streamable HTTP ``initialize``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
import trio

import watchgate.transports.http as http_module
from tests.transports.test_http import INIT, URL, _mocked, _next, connected
from watchgate.config import parse_config
from watchgate.errors import UpstreamStartError
from watchgate.transports.http import sse_connector


class LegacyServer:
    """A server of the 2024-11-05 kind: one event stream, messages POSTed to the endpoint it names."""

    def __init__(self, endpoint: str = "/messages?session=7") -> None:
        self.endpoint = endpoint
        self.posts: list[httpx2.Request] = []
        self._answers, self._pending = trio.open_memory_channel[dict[str, Any] | None](16)

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        if request.method == "GET":
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=self._stream())
        if request.url.path != "/messages":
            return httpx2.Response(405)  # no Streamable HTTP here
        self.posts.append(request)
        body = json.loads(request.content)
        if "id" in body:
            self._answers.send_nowait(
                {"jsonrpc": "2.0", "id": body["id"], "result": {"echo": body["method"]}}
            )
        return httpx2.Response(202)

    def close_stream(self) -> None:
        self._answers.send_nowait(None)

    async def _stream(self) -> AsyncIterator[bytes]:
        yield f"event: endpoint\ndata: {self.endpoint}\n\n".encode()
        async for answer in self._pending:
            if answer is None:
                return
            yield f"event: message\ndata: {json.dumps(answer)}\n\n".encode()


async def test_a_server_that_refuses_streamable_http_is_spoken_to_the_legacy_way() -> None:
    server = LegacyServer()
    async with connected(server) as connection:
        await connection.send([INIT + b"\n"])
        assert await _next(connection) == {"jsonrpc": "2.0", "id": 1, "result": {"echo": "initialize"}}
        await connection.send([b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'])
        await connection.send([b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}\n'])
        assert (await _next(connection))["result"] == {"echo": "tools/list"}
        server.close_stream()
        with trio.fail_after(5):
            await connection.wait()
        assert str(connection.ending()) == "127.0.0.1:9 closed its event stream"
    assert [str(post.url) for post in server.posts] == ["http://127.0.0.1:9/messages?session=7"] * 3


def _sse_config() -> Any:
    return parse_config(f"proxy:\n  upstream:\n    transport: sse\n    url: {URL}\n").proxy.upstreams[0]


async def test_transport_sse_opens_the_event_stream_before_anything_is_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = LegacyServer()
    monkeypatch.setattr(http_module.httpx2, "AsyncClient", _mocked(server))
    async with sse_connector(_sse_config()) as connection:
        await connection.send([INIT + b"\n"])
        assert (await _next(connection))["id"] == 1
        server.close_stream()
    assert [post.url.path for post in server.posts] == ["/messages"]


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        (
            LegacyServer("http://elsewhere.example/steal"),
            "named an endpoint on another origin (elsewhere.example)",
        ),
        (lambda r: httpx2.Response(404), "GET /mcp answered HTTP 404, not an event stream"),
        (
            lambda r: httpx2.Response(
                200, headers={"content-type": "text/event-stream"}, content=b"data: x\n\n"
            ),
            "the stream began with a 'message' event, not 'endpoint'",
        ),
    ],
)
async def test_a_stream_that_names_no_usable_endpoint_fails_the_start_saying_why(
    monkeypatch: pytest.MonkeyPatch, server: Any, reason: str
) -> None:
    monkeypatch.setattr(http_module.httpx2, "AsyncClient", _mocked(server))
    with pytest.raises(UpstreamStartError) as info:
        async with sse_connector(_sse_config()):
            pass
    assert str(info.value) == f"cannot open the event stream of 127.0.0.1:9: the server {reason}".replace(
        "the server GET", "GET"
    ).replace("the server the stream", "the stream")


async def test_a_server_refusing_both_ways_answers_initialize_with_both_reasons() -> None:
    async with connected(lambda r: httpx2.Response(405)) as connection:
        await connection.send([INIT + b"\n"])
        refused = await _next(connection)
    assert refused["error"]["message"] == (
        "127.0.0.1:9 answered HTTP 405 to initialize, and offers no legacy event stream"
        " (GET /mcp answered HTTP 405, not an event stream)"
    )
