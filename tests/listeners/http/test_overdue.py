"""Requests waiting for their answers, nudged by one watch instead of a timer each.

What a client sees: a quick answer comes as soon as it is there; a client that leaves during a
slow call is noticed (its call is cancelled) once the call has waited ``WATCH_AFTER``, at most a
`TICK` later; a session's request with no answer within its JSON window becomes a stream
(``within``), at most a `TICK` late. Timed on MockClock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from watchgate.listeners.http.asgi import WATCH_AFTER, unless_gone
from watchgate.listeners.http.overdue import TICK, Overdue
from watchgate.listeners.http.streams import EventLog


class Client:
    """An ASGI ``receive`` whose client leaves when told to."""

    def __init__(self) -> None:
        self.left = trio.Event()
        self.watched = False  # its receive() was called: somebody watches it

    async def receive(self) -> MutableMapping[str, Any]:
        self.watched = True
        await self.left.wait()
        return {"type": "http.disconnect"}


@asynccontextmanager
async def watch() -> AsyncIterator[Overdue]:
    overdue = Overdue()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(overdue.run)
        yield overdue
        nursery.cancel_scope.cancel()


async def test_a_quick_answer_comes_at_once_and_its_client_is_never_watched(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log, client = EventLog(1), Client()
    async with watch() as overdue, trio.open_nursery() as nursery:
        started = trio.current_time()
        nursery.start_soon(_answer_after, log, 0.1)
        assert await unless_gone(client.receive, log, log.answer_now, overdue) == b"answer"
        assert trio.current_time() - started == pytest.approx(0.1)
        await trio.sleep(1)  # past the quick wait's time: the watch drops it, nudging nothing
    assert not client.watched


async def test_a_client_that_leaves_during_a_slow_call_is_noticed_once_it_is_watched(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log, client = EventLog(1), Client()
    async with watch() as overdue, trio.open_nursery() as nursery:
        started = trio.current_time()

        async def leave() -> None:
            await trio.sleep(0.05)
            client.left.set()

        nursery.start_soon(leave)
        assert await unless_gone(client.receive, log, log.answer_now, overdue) is None
        waited = trio.current_time() - started
    assert WATCH_AFTER <= waited <= WATCH_AFTER + TICK


async def test_a_slow_answer_is_still_taken_while_the_client_is_watched(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log, client = EventLog(1), Client()
    async with watch() as overdue, trio.open_nursery() as nursery:
        nursery.start_soon(_answer_after, log, 3)
        assert await unless_gone(client.receive, log, log.answer_now, overdue) == b"answer"
    assert client.watched


async def test_no_first_event_within_a_short_window_is_too_slow_at_most_a_tick_late(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log, client = EventLog(1), Client()
    async with watch() as overdue:
        started = trio.current_time()
        with pytest.raises(trio.TooSlowError):
            await unless_gone(client.receive, log, log.settled, overdue, within=0.2)
        waited = trio.current_time() - started
    assert 0.2 <= waited <= 0.2 + TICK
    assert not client.watched


async def test_a_longer_window_ends_on_time_while_the_client_is_watched(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log, client = EventLog(1), Client()
    async with watch() as overdue:
        started = trio.current_time()
        with pytest.raises(trio.TooSlowError):
            await unless_gone(client.receive, log, log.settled, overdue, within=2)
        assert trio.current_time() - started == pytest.approx(2)
    assert client.watched


async def test_waits_of_both_delays_are_each_nudged_in_their_own_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    logs = [EventLog(n) for n in range(4)]
    nudged: dict[int, float] = {}
    async with watch() as overdue, trio.open_nursery() as nursery:
        started = trio.current_time()

        async def wait(n: int, delay: float) -> None:
            waiting = overdue.wait(delay, logs[n])
            while not waiting.overdue:
                await logs[n].changed()
            nudged[n] = trio.current_time() - started

        for n, delay in enumerate((0.25, 0.2, 0.25, 0.2)):
            nursery.start_soon(wait, n, delay)
            await trio.sleep(0.01)
    for n, delay in enumerate((0.25, 0.2, 0.25, 0.2)):
        assert 0.01 * n + delay <= nudged[n] <= 0.01 * n + delay + TICK
    assert len(overdue) == 0


async def test_an_idle_watch_sleeps_until_a_request_waits(autojump_clock: trio.testing.MockClock) -> None:
    overdue, woken = Overdue(), []
    real_due = overdue.due

    def due(now: float) -> None:
        woken.append(now)
        real_due(now)

    overdue.due = due  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(overdue.run)
        await trio.sleep(3600)
        assert woken == []  # an hour idle: not one wake-up
        log = EventLog(1)
        waiting = overdue.wait(0.25, log)
        await trio.sleep(1)
        assert waiting.overdue
        assert woken == [3600, pytest.approx(3600 + 0.25 + TICK)]  # the wait came; its time passed
        nursery.cancel_scope.cancel()


async def _answer_after(log: EventLog, delay: float) -> None:
    await trio.sleep(delay)
    log.append(b"answer")
    log.finish()
