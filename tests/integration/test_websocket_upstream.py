"""``transport: websocket``: a real server (mcp-server-time, a stdio server) behind a small
WebSocket bridge in this test, reached through ``watchgate run`` and driven by the official SDK."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

from tests.integration.conftest import EVERYTHING, gateway, text_of, upstream
from tests.integration.conftest import TIME as TIME_SERVER

pytestmark = pytest.mark.integration


async def _bridge(request: WebSocketRequest) -> None:
    """One WebSocket, one server process: each text message is one line of its stdin and back."""
    socket = await request.accept(subprotocol="mcp")
    process = await trio.lowlevel.open_process(
        TIME_SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    async def to_server() -> None:
        try:
            while True:
                message = await socket.get_message()
                await stdin.send_all(
                    (message if isinstance(message, str) else message.decode()).encode() + b"\n"
                )
        except ConnectionClosed:
            await stdin.aclose()

    async def to_client() -> None:
        buffer = b""
        async for chunk in stdout:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    await socket.send_message(line.decode())

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(to_server)
            await to_client()
            nursery.cancel_scope.cancel()
    finally:
        process.kill()
        await process.wait()


@asynccontextmanager
async def time_over_websocket() -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, _bridge, "127.0.0.1", 0, None)
        yield f"ws://127.0.0.1:{server.port}/mcp"
        nursery.cancel_scope.cancel()


async def test_a_server_over_websocket_beside_a_stdio_one(write_config: Callable[..., Path]) -> None:
    with trio.fail_after(60):
        async with time_over_websocket() as url:
            remote = {"name": "clock", "transport": "websocket", "url": url}
            config = write_config(remote, upstream("everything", EVERYTHING))
            async with gateway(config) as session:
                names = {tool.name for tool in (await session.list_tools()).tools}
                assert {"clock__get_current_time", "everything__echo"} <= names
                answers = []

                async def call() -> None:
                    answer = await session.call_tool("clock__get_current_time", {"timezone": "UTC"})
                    answers.append(text_of(answer))

                async with trio.open_nursery() as nursery:
                    for _ in range(10):
                        nursery.start_soon(call)
                assert len(answers) == 10 and all("UTC" in answer for answer in answers)
                echoed = await session.call_tool("everything__echo", {"message": "beside"})
                assert "beside" in text_of(echoed)
