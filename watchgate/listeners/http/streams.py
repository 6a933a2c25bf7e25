"""One SSE stream of a session as an append-only log of events, so no message rides on a socket.

A server message is appended to the log of the stream it belongs to; whoever serves that
stream over HTTP reads the log from a position. A connection that drops loses nothing: the
client reconnects with ``Last-Event-ID`` and reading goes on after that event (2025-11-25
resumability). Each log keeps at most ``limit`` events; a client that never reads sees the
oldest ones dropped (and a warning) rather than the gateway's memory grow without end.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator

import trio

__all__ = ["EventLog", "event_id", "parse_event_id"]

_log = logging.getLogger("watchgate.http")


def event_id(stream: int, seq: int) -> str:
    """Event ids name their stream, so a ``Last-Event-ID`` alone says where to resume."""
    return f"{stream}-{seq}"


def parse_event_id(text: str) -> tuple[int, int] | None:
    stream, sep, seq = text.partition("-")
    if not sep or not stream.isdigit() or not seq.isdigit():
        return None
    return int(stream), int(seq)


class EventLog:
    def __init__(self, number: int, *, limit: int = 1024) -> None:
        self.number = number
        self._events: deque[tuple[int, bytes]] = deque()
        self._limit = limit
        self._next = 1  # seq 0 is the priming event's: "nothing read yet"
        self._delivered = 0  # the newest seq some reader has taken
        self._changed = trio.Event()
        self.complete = False  # the request's answer is in: nothing follows it
        self.reading = False  # an HTTP response is serving this log now

    def append(self, data: bytes) -> None:
        if self.complete:
            return
        if len(self._events) >= self._limit:
            dropped, _ = self._events.popleft()
            _log.warning("stream %d: event %d dropped, its client does not read", self.number, dropped)
        self._events.append((self._next, data))
        self._next += 1
        self.wake()

    def finish(self) -> None:
        """No more events after those appended (the answer went in, or the session ended)."""
        self.complete = True
        self.wake()

    def wake(self) -> None:
        """Wake whoever waits on the log (``changed``): they look again."""
        self._changed.set()
        self._changed = trio.Event()

    async def changed(self) -> None:
        """Wait until the log changes (or is woken)."""
        await self._changed.wait()

    @property
    def undelivered(self) -> int:
        """Where a reader starts that did not say where: after what others already took."""
        return self._delivered

    def knows(self, seq: int) -> bool:
        """Whether reading can resume after ``seq`` without a gap."""
        first = self._events[0][0] if self._events else self._next
        return first - 1 <= seq < self._next

    def settled(self) -> bool | None:
        """None until the first event (or the end); then True if the log is complete with one
        event at most (a request answered before anything else: JSON will do, no stream)."""
        if not self._events and not self.complete:
            return None
        return self.complete and len(self._events) <= 1 and self._next <= 2

    def answer_now(self) -> bytes | None:
        """None until the end; then the last event (the request's answer), or b"" if none."""
        if not self.complete:
            return None
        if not self._events:
            return b""
        self._delivered, data = self._events[-1]
        return data

    async def answer(self) -> bytes:
        """Wait for the end; the last event (the request's answer), or b"" if there was none."""
        while (data := self.answer_now()) is None:
            await self._changed.wait()
        return data

    async def read_after(self, seq: int) -> AsyncIterator[tuple[int, bytes]]:
        """Every event after ``seq``, waiting for more, until the log is complete."""
        while True:
            changed = self._changed
            for number, data in list(self._events):
                if number > seq:
                    seq = number
                    self._delivered = max(self._delivered, number)
                    yield number, data
            if self.complete and (not self._events or self._events[-1][0] <= seq):
                return
            await changed.wait()
