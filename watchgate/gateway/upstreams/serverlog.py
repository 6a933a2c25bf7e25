"""Each upstream's recent history for ``watchgate logs``: its stderr and its lifecycle events.

A bounded ring (it must not grow with a chatty server) that followers can wait on.
"""

from __future__ import annotations

import collections
import datetime

import trio


class ServerLog:
    def __init__(self, maxlen: int = 1000) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=maxlen)
        self._total = 0
        self._changed = trio.Event()

    @property
    def total(self) -> int:
        """How many lines were ever appended (a follower's position)."""
        return self._total

    def append(self, text: str, kind: str = "stderr") -> None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self._lines.append(f"{stamp} {kind}: {text}")
        self._total += 1
        self._changed.set()
        self._changed = trio.Event()

    def stderr(self, text: str) -> None:
        self.append(text, "stderr")

    def tail(self, count: int) -> list[str]:
        return list(self._lines)[-count:] if count > 0 else []

    def since(self, position: int) -> list[str]:
        """Lines appended after ``position`` (as many as the ring still holds)."""
        missing = self._total - position
        return self.tail(min(missing, len(self._lines)))

    async def wait_for_more(self, position: int) -> None:
        while self._total <= position:
            await self._changed.wait()
