"""A WebSocket connection seen as a byte stream, so an attach session is just another stream to
the ClientActor (and stdin/stdout are just streams to the attach bridge).

Each ``send_all`` is one WebSocket message carrying whole newline-terminated lines (a batch from
the writer); each message received is handed on as it is. Framing stays newline-based end to end.
"""

from __future__ import annotations

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection


class WebSocketStream(trio.abc.HalfCloseableStream):
    def __init__(self, ws: WebSocketConnection) -> None:
        self._ws = ws

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self._ws.send_message(bytes(data))
        except ConnectionClosed:
            raise trio.BrokenResourceError("the attach session is closed") from None

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        try:
            message = await self._ws.get_message()
        except ConnectionClosed:
            return b""
        return message.encode() if isinstance(message, str) else message

    async def send_eof(self) -> None:
        await self._ws.aclose()

    async def aclose(self) -> None:
        await self._ws.aclose()
