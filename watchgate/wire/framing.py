"""Newline-delimited JSON-RPC framing on trio streams: bytes in, lines out.

The codec (``watchgate.protocol.jsonrpc``) knows messages and nothing of streams; this is the
other half, the one that reads.
"""

from __future__ import annotations

import collections

import trio

from watchgate.errors import LineTooLong

__all__ = ["LineReader", "LineTooLong"]

_MAX_CHUNK = 1 << 20  # the largest read LineReader grows to (the widest pipe, see transports/stdio.py)


class LineReader:
    """Newline-delimited framing over a trio stream, reading in large chunks.

    Lines are found only in the newly received chunk, so a multi-megabyte message is copied once
    when it is joined, not rescanned on every read. A plain class rather than an async
    generator: nothing is left to finalize when a reader stops early.
    """

    def __init__(
        self,
        stream: trio.abc.ReceiveStream,
        *,
        chunk_size: int = 65536,
        max_line_bytes: int = 128 * 1024 * 1024,
    ) -> None:
        self._stream = stream
        self._min_chunk = self._chunk_size = chunk_size
        self._max = max_line_bytes
        self._ready: collections.deque[bytes] = collections.deque()
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._eof = False

    def __aiter__(self) -> LineReader:
        return self

    async def __anext__(self) -> bytes:
        line = await self.receive_line()
        if line is None:
            raise StopAsyncIteration
        return line

    @property
    def buffered(self) -> bool:
        """Whether a whole line is already read: ``next_buffered`` returns it without I/O."""
        return bool(self._ready)

    def next_buffered(self) -> bytes:
        """The next line already read (see ``buffered``)."""
        return self._ready.popleft()

    async def receive_line(self) -> bytes | None:
        """The next non-blank line without its newline, or None once the stream has ended."""
        while not self._ready:
            if self._eof:
                return None
            chunk = bytes(await self._stream.receive_some(self._chunk_size))
            self._adapt(len(chunk))
            if not chunk:
                self._eof = True
                tail = b"".join(self._pending).strip()
                self._pending.clear()
                if tail:
                    self._ready.append(tail)
            elif b"\n" not in chunk:
                self._hold(chunk)
            else:
                self._split(chunk)
        return self._ready.popleft()

    def _adapt(self, got: int) -> None:
        """Read bigger while reads come back full (a large message: fewer reads and wake-ups),
        smaller again once they do not (a big read buffer is costly for small messages)."""
        if got == self._chunk_size:
            self._chunk_size = min(self._chunk_size * 2, _MAX_CHUNK)
        elif got < self._chunk_size // 4:
            self._chunk_size = max(self._chunk_size // 2, self._min_chunk)

    def _split(self, chunk: bytes) -> None:
        parts = chunk.split(b"\n")
        if self._pending:
            parts[0] = b"".join([*self._pending, parts[0]])
            self._pending.clear()
            self._pending_len = 0
        self._ready.extend(line.rstrip(b"\r") for line in parts[:-1] if line.strip())
        if parts[-1]:
            self._hold(parts[-1])

    def _hold(self, piece: bytes) -> None:
        self._pending.append(piece)
        self._pending_len += len(piece)
        if self._pending_len > self._max:
            raise LineTooLong(f"a message exceeded {self._max} bytes without a newline")
