"""The benchmark's HTTP client: a POST that fails is an error answer to its request, so a
measurement stops with the reason instead of waiting for an answer that never comes."""

from __future__ import annotations

from functools import partial

import pytest
import trio

from watchgate.bench.driver import BenchError
from watchgate.bench.httpdriver import free_port, http_session


async def test_a_server_that_is_not_there_fails_the_session() -> None:
    with pytest.raises(BenchError, match=r"initialize failed: .*ConnectError"):
        async with http_session("nobody", f"http://127.0.0.1:{free_port()}/mcp"):
            pass  # pragma: no cover - never opened


async def test_an_http_error_status_fails_with_what_the_server_said() -> None:
    async def refuse(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        body = b"no such endpoint"
        head = b"HTTP/1.1 404 Not Found\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        await stream.send_all(head + body)
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, refuse, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        with pytest.raises(BenchError, match="HTTP 404: no such endpoint"):
            async with http_session("refused", f"http://127.0.0.1:{port}/mcp"):
                pass  # pragma: no cover - never opened
        nursery.cancel_scope.cancel()
