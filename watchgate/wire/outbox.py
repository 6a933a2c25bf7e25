"""The one door to a stream that several tasks write to: an actor's writer and, when it is
idle, the tasks that produce the data.

An actor's writer task drains its mailbox and writes each batch; that costs a task hop (a
scheduler pass) per message when traffic is light, the common case of one call at a time. When
the writer is idle and nothing waits in its mailbox, the producer may instead write straight to
the pipe, without waiting: `try_send` writes what the pipe takes at once and says how much that
was. The producer then hands the rest to the writer (the client side, where nothing else writes
meanwhile) or writes it itself with `send_all` at once (a server's stdin, where the reader may
answer a ping): `send_all` takes the lock before anything else can run, so nothing lands in the
middle of the line. Writes that wait hold the lock, so two never interleave.
"""

from __future__ import annotations

import trio

from watchgate.protocol.jsonrpc import Line
from watchgate.wire.pipes import EagerPipeSend


class Outbox:
    def __init__(self, stream: trio.abc.SendStream) -> None:
        self.stream = stream
        self._lock = trio.StrictFIFOLock()
        self._nowait = stream.send_nowait if isinstance(stream, EagerPipeSend) else None

    @property
    def can_send_nowait(self) -> bool:
        """The stream can take a write without waiting, and nobody is writing to it."""
        return self._nowait is not None and not self._lock.locked()

    def try_send(self, data: Line) -> int:
        """Write what the stream takes now, without waiting; 0 if it cannot or someone is writing.

        Raises trio's ``BrokenResourceError`` / ``ClosedResourceError`` like ``send_all``.
        """
        if self._nowait is None or self._lock.locked():
            return 0
        return self._nowait(data)

    async def send_all(self, data: Line | memoryview) -> None:
        """Write everything, waiting for room; one writer at a time, in arrival order."""
        try:
            self._lock.acquire_nowait()  # uncontended, the common case: no scheduler pass
        except trio.WouldBlock:
            await self._lock.acquire()
        try:
            await self.stream.send_all(data)
        finally:
            self._lock.release()
