"""A pair of byte streams seen as what the upstream seam carries: lines out, bursts of lines in.

A transport over streams (stdio's pipes, the in-memory mock of the tests) composes one of these
and so meets the message half of ``watchgate.transports.base.UpstreamTransport``:

- ``send`` writes whole lines through an `Outbox` (one writer at a time, in order);
- ``ready``/``send_nowait`` are the pipe fast path, where the stream has one: a lone request
  written straight to the pipe by the task that has it (see outbox.py);
- ``receive()`` yields the peer's lines a *burst* at a time: every whole line already read, so
  the audit log can commit a burst's records with one write (ADR-019).

trio's broken- and closed-stream errors stop here: a peer that went away ends ``receive()``,
and a write to it raises `PeerGone` (the one error the actors above catch).
"""

from __future__ import annotations

import trio

from watchgate.errors import PeerGone
from watchgate.protocol.jsonrpc import Line
from watchgate.wire.framing import LineReader
from watchgate.wire.outbox import Outbox
from watchgate.wire.pipes import EagerPipeSend

__all__ = ["Bursts", "LineChannel"]

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


class Bursts:
    """``async for burst in channel.receive()``: lists of lines, never empty; ends at EOF.

    Raises ``LineTooLong`` for a line over the limit (a framing error that ends the peer)."""

    def __init__(self, reader: LineReader) -> None:
        self._reader = reader

    def __aiter__(self) -> Bursts:
        return self

    async def __anext__(self) -> list[bytes]:
        try:
            line = await self._reader.receive_line()
        except _GONE:  # closed under us: the same as its end
            line = None
        if line is None:
            raise StopAsyncIteration
        burst = [line]
        while self._reader.buffered:
            burst.append(self._reader.next_buffered())
        return burst


class LineChannel:
    delivers = False  # a byte stream: lines are written (send), never messages handed over

    def __init__(self, send: trio.abc.SendStream, receive: trio.abc.ReceiveStream) -> None:
        self._outbox = Outbox(send)
        self._bursts = Bursts(LineReader(receive))
        self.takes_views = isinstance(
            send, EagerPipeSend
        )  # a pipe takes buffer views; a WebSocket wants bytes

    def reads_with(self, reader: object) -> None:
        """Lines of a byte stream come through ``receive`` only."""

    def deliver(self, msg: object, line: bytes) -> bool:
        """A byte stream takes lines, not messages (``send``)."""
        return False

    @property
    def ready(self) -> bool:
        """A write would go out at once: the fast path is open and nobody is writing."""
        return self._outbox.can_send_nowait

    def send_nowait(self, data: Line) -> int:
        """Write what goes at once (check ``ready`` first); the rest must follow with ``send``
        before anything else. Raises `PeerGone`."""
        try:
            return self._outbox.try_send(data)
        except _GONE as exc:
            raise PeerGone(str(exc) or "the peer closed its side") from None

    async def send(self, data: Line | memoryview) -> None:
        """Write whole lines, waiting for room; raises `PeerGone`."""
        try:
            await self._outbox.send_all(data)
        except _GONE as exc:
            raise PeerGone(str(exc) or "the peer closed its side") from None

    def receive(self) -> Bursts:
        return self._bursts
