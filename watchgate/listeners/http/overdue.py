"""The requests waiting for their answers, watched by one task of the listener, not a timer each.

A request over HTTP first waits for its answer alone: watching its client too costs a task and
a socket registration, more than the rest of a quick answer's wait. Only a request still
waiting after a while (``WATCH_AFTER``; a session's JSON window, sooner) has its client watched
or its answer turned into a stream. A timer per request would be a trio cancel scope, ~8 µs to
enter and leave on a small VM: 2 % of a whole request through the gateway. So each waiting
request only notes when it is due here (a deque append), and one task, waking at most every
`TICK`, nudges the waits that are due and still waiting; they then go the slow way. A wait is
nudged between its due time and one `TICK` later; an idle listener's task sleeps until a
request waits.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

import trio

__all__ = ["TICK", "Overdue", "Waiting"]

TICK = 0.05  # seconds: how late past its time a wait may be nudged


class Wakeable(Protocol):
    def wake(self) -> None:
        """Wake whoever waits on this (they look again)."""


class Waiting:
    """One request's wait: ``overdue`` once its time passed with the wait still on (``over``
    not called): its waiter, woken, goes the slow way."""

    __slots__ = ("_on", "due", "overdue")

    def __init__(self, due: float, on: Wakeable) -> None:
        self.due = due
        self.overdue = False
        self._on: Wakeable | None = on

    def over(self) -> None:
        """The wait ended in time: nothing to nudge."""
        self._on = None

    def nudge(self) -> None:
        if self._on is not None:
            self.overdue = True
            self._on.wake()
            self._on = None


class Overdue:
    """Waits by their due time: one queue per delay (each in due order, as requests come in
    order), so the earliest due is always at a queue's head."""

    def __init__(self, tick: float = TICK) -> None:
        self._tick = tick
        self._queues: dict[float, deque[Waiting]] = {}
        self._wake_at = math.inf  # when the task wakes next
        self._replan = trio.Event()  # set: a wait comes that is due before then

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def wait(self, delay: float, on: Wakeable) -> Waiting:
        """Note a wait on ``on`` due ``delay`` seconds from now. One that ends in time says so
        (``over``) and is dropped when due, unnudged."""
        waiting = Waiting(trio.current_time() + delay, on)
        queue = self._queues.get(delay)
        if queue is None:
            queue = self._queues[delay] = deque()
        queue.append(waiting)
        if waiting.due + self._tick < self._wake_at:  # the first, or a shorter delay's
            self._replan.set()
        return waiting

    def due(self, now: float) -> None:
        """Nudge every wait due by ``now``."""
        for queue in self._queues.values():
            while queue and queue[0].due <= now:
                queue.popleft().nudge()

    async def run(self) -> None:
        """Nudge the waits as they fall due, at most every `TICK` (the due ones gather: one
        wake-up for them), until cancelled; with nothing waiting, sleep until something does."""
        while True:
            heads = [queue[0].due for queue in self._queues.values() if queue]
            self._wake_at = min(heads) + self._tick if heads else math.inf
            self._replan = trio.Event()
            with trio.move_on_at(self._wake_at):
                await self._replan.wait()
            self.due(trio.current_time())
