"""``transport: websocket``: one text message per JSON-RPC message, the ``mcp`` subprotocol, the
config's headers and token on the handshake, and a closed socket ending the connection."""

from __future__ import annotations

import gc
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from trio_websocket import WebSocketRequest, serve_websocket

from watchgate.config import parse_config
from watchgate.errors import PeerGone, UpstreamStartError
from watchgate.transports.websocket import websocket_connector

# trio-websocket 0.12 leaves its client socket to the garbage collector when the server closes
# first or rejects the handshake (a plain open_websocket_url does it too): its ResourceWarning only
_LEAKS_ITS_SOCKET = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
)
Handler = Callable[[WebSocketRequest], Awaitable[None]]


@asynccontextmanager
async def websocket_server(handler: Handler) -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
        yield f"ws://127.0.0.1:{server.port}/mcp"
        nursery.cancel_scope.cancel()


def _config(url: str, extra: str = "") -> Any:
    return parse_config(
        f"proxy:\n  upstream:\n    transport: websocket\n    url: {url}\n{extra}"
    ).proxy.upstreams[0]


async def test_messages_go_one_per_frame_with_the_mcp_subprotocol_and_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handshakes: list[WebSocketRequest] = []

    async def echo(request: WebSocketRequest) -> None:
        handshakes.append(request)
        socket = await request.accept(subprotocol="mcp")
        while True:
            message = json.loads(await socket.get_message())
            await socket.send_message(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": message}))

    monkeypatch.setenv("WG_WS_TOKEN", "sekrit")
    async with websocket_server(echo) as url:
        config = _config(url, "    headers: {X-Team: blue}\n    auth: {token_env: WG_WS_TOKEN}\n")
        async with websocket_connector(config) as connection:
            await connection.send(
                [b'{"jsonrpc":"2.0","id":1,"method":"a"}\n', b'{"jsonrpc":"2.0","id":2,"method":"b"}\n']
            )
            with trio.fail_after(5):
                first = json.loads((await connection.receive().receive())[0])
                second = json.loads((await connection.receive().receive())[0])
    assert (first["id"], second["id"]) == (1, 2)
    headers = dict(handshakes[0].headers)
    assert handshakes[0].proposed_subprotocols == ("mcp",)
    assert headers[b"authorization"] == b"Bearer sekrit" and headers[b"x-team"] == b"blue"


@_LEAKS_ITS_SOCKET
async def test_a_server_closing_the_socket_ends_the_connection_with_its_code() -> None:
    async def bye(request: WebSocketRequest) -> None:
        socket = await request.accept(subprotocol="mcp")
        await socket.get_message()
        await socket.aclose(code=1011, reason="going for lunch")

    async with websocket_server(bye) as url, websocket_connector(_config(url)) as connection:
        await connection.send([b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n'])
        with trio.fail_after(5):
            await connection.wait()
        assert (
            str(connection.ending())
            == f"{connection.host} closed the WebSocket (1011 INTERNAL_ERROR: going for lunch)"
        )
        with pytest.raises(PeerGone):
            await connection.send([b'{"jsonrpc":"2.0","id":2,"method":"ping"}\n'])
    gc.collect()  # what trio-websocket left, collected under this test's filter


# trio-websocket 0.12 leaves the socket of a rejected handshake to the garbage collector
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
)
async def test_a_refused_or_absent_server_fails_the_start_saying_why() -> None:
    async def refuse(request: WebSocketRequest) -> None:
        await request.reject(401)

    async with websocket_server(refuse) as url:
        with pytest.raises(
            UpstreamStartError, match=r"refused the WebSocket: HTTP 401 \(check the server's auth"
        ):
            async with websocket_connector(_config(url)):
                pass
    with pytest.raises(UpstreamStartError, match=r"cannot open a WebSocket to ws://127\.0\.0\.1:9/mcp"):
        async with websocket_connector(_config("ws://127.0.0.1:9/mcp")):
            pass
    gc.collect()  # what trio-websocket left, collected under this test's filter
