"""The command side of the control socket: send one request, read the reply (or a stream)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)

from watchgate.daemon import control
from watchgate.daemon.paths import RuntimePaths
from watchgate.errors import ControlError, DaemonNotRunning, DaemonRefused
from watchgate.listeners.endpoints import CONTROL_PATH, MAX_MESSAGE

HANDSHAKE_TIMEOUT = 10.0


@asynccontextmanager
async def connect(
    paths: RuntimePaths, path: str = CONTROL_PATH, **options: Any
) -> AsyncIterator[WebSocketConnection]:
    """A WebSocket to the daemon's ``path``; refusals and silence end in one clear error."""
    paths.verify_socket()  # never speak to a socket someone else put there
    try:
        stream = await trio.open_unix_socket(str(paths.socket))
    except OSError:
        raise DaemonNotRunning(
            f"no Watchgate daemon is running (socket {paths.socket}); start one with `watchgate up`"
        ) from None
    try:
        async with stream, trio.open_nursery() as nursery:  # the connection is closed however it ends
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                ws = await wrap_client_stream(
                    nursery, stream, "localhost", path, max_message_size=MAX_MESSAGE, **options
                )
            try:
                yield ws
            finally:
                await ws.aclose()
                nursery.cancel_scope.cancel()
    except* ConnectionRejected as group:
        rejected = group.exceptions[0]
        assert isinstance(rejected, ConnectionRejected)
        body = (rejected.body or b"").decode(errors="replace").strip()
        raise DaemonRefused(f"the daemon at {paths.socket} refused this connection: {body}") from None
    except* (HandshakeError, trio.TooSlowError):
        raise DaemonRefused(f"the daemon at {paths.socket} did not complete the handshake") from None


async def call(paths: RuntimePaths, request: control.Request) -> Any:
    """One request, one reply; a refusal raises ControlError with the daemon's reason."""
    async with connect(paths) as ws:
        await ws.send_message(control.encode(request).decode())
        try:
            reply = control.decode_reply(await ws.get_message())
        except ConnectionClosed:
            raise ControlError("the daemon closed the connection before answering") from None
    if not reply.ok:
        raise ControlError(reply.error or "request failed")
    return reply.result


async def follow(paths: RuntimePaths, request: control.Request, on_result: Callable[[Any], bool]) -> None:
    """A request whose reply comes in several messages (``logs -f``): ``on_result`` gets each
    result and returns False to stop. A callback, not an async generator: the connection's
    nursery must not be suspended inside a consumer's loop."""
    refusal: str | None = None
    async with connect(paths) as ws:
        await ws.send_message(control.encode(request).decode())
        while True:
            try:
                reply = control.decode_reply(await ws.get_message())
            except ConnectionClosed:
                break
            if not reply.ok:
                refusal = reply.error or "request failed"
                break
            if not on_result(reply.result) or not reply.more:
                break
    if refusal is not None:  # raised outside the connection's nursery: callers catch it as itself
        raise ControlError(refusal)
