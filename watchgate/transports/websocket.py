"""``transport: websocket``: a remote MCP server over WebSocket (trio-websocket, subprotocol ``mcp``).

Each JSON-RPC message is one text message each way, so the actor's lines map one to one. The
handshake carries the config's ``headers`` and bearer token; TLS follows the config's ``tls``.
The socket closing, for any reason, ends the connection with the close code and reason, and the
supervisor reconnects with its backoff, answering what was in flight with -32003.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Final

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from watchgate.errors import PeerGone, UpstreamStartError
from watchgate.protocol.urls import shown_url
from watchgate.sanitize import clean
from watchgate.transports.remote import RemoteConnection, request_headers, ssl_context

if TYPE_CHECKING:
    from watchgate.config.schema import UpstreamConfig

__all__ = ["WebSocketUpstream", "websocket_connector"]

_SUBPROTOCOL: Final = "mcp"
_MAX_MESSAGE: Final = 128 * 1024 * 1024  # the same bound as a stdio server's line


class WebSocketUpstream(RemoteConnection):
    """One WebSocket connection to a remote server, as the upstream actor sees it."""

    def __init__(self, config: UpstreamConfig, socket: WebSocketConnection) -> None:
        super().__init__(config)
        self._socket = socket

    async def _send_line(self, line: bytes) -> None:
        """One text message a line."""
        try:
            await self._socket.send_message(line.decode("utf-8", "replace"))
        except ConnectionClosed as exc:
            self._closed(exc)
            raise PeerGone(self._reason) from None

    async def read(self) -> None:
        """Deliver every message the server sends until the socket closes."""
        try:
            while True:
                message = await self._socket.get_message()
                await self._deliver(message.encode() if isinstance(message, str) else message)
        except ConnectionClosed as exc:
            self._closed(exc)

    def _closed(self, exc: ConnectionClosed) -> None:
        """The close code and what the server said with it, e.g. ``1011 INTERNAL_ERROR: lunch``."""
        detail = ""
        if exc.reason is not None:
            said = f": {clean(exc.reason.reason)}" if exc.reason.reason else ""
            detail = f" ({exc.reason.code} {exc.reason.name}{said})"
        self._end(f"{self.host} closed the WebSocket{detail}")

    async def terminate(self) -> None:
        self._end(self._reason)
        await self._socket.aclose()


@asynccontextmanager
async def websocket_connector(config: UpstreamConfig) -> AsyncIterator[WebSocketUpstream]:
    """Open a WebSocket to ``config.url`` offering the ``mcp`` subprotocol."""
    if not config.url:
        raise UpstreamStartError("transport websocket needs a url")
    sent = request_headers(config)
    headers = [(name.encode(), value.encode()) for name, value in sent.items()]
    opening = open_websocket_url(
        config.url,
        ssl_context(config),
        subprotocols=[_SUBPROTOCOL],
        extra_headers=headers,
        max_message_size=_MAX_MESSAGE,
        connect_timeout=config.startup_timeout,
        disconnect_timeout=config.shutdown_timeout,
    )
    async with AsyncExitStack() as stack:
        try:
            socket = await stack.enter_async_context(opening)
        except ConnectionRejected as exc:
            hint = " (check the server's auth: or headers:)" if exc.status_code in (401, 403) else ""
            raise UpstreamStartError(
                f"the server refused the WebSocket: HTTP {exc.status_code}{hint}"
            ) from None
        except (HandshakeError, OSError, trio.TooSlowError) as exc:
            reason = clean(str(exc) or type(exc).__name__)
            raise UpstreamStartError(
                f"cannot open a WebSocket to {shown_url(config.url)}: {reason}"
            ) from None
        connection = WebSocketUpstream(config, socket)
        if "authorization" in sent:
            connection.remember_credential(sent["authorization"])
        nursery = await stack.enter_async_context(trio.open_nursery())
        nursery.start_soon(connection.read)
        try:
            yield connection
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(config.shutdown_timeout):
                await connection.terminate()
            nursery.cancel_scope.cancel()
