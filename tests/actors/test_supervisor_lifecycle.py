"""Supervisor start-up, shutdown, nesting, snapshots and error containment."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import trio
import trio.testing

from actors import ChildSpec, ChildState, RestartType, Supervisor, SupervisorEvent

from .helpers import Log, Recorder, Worker, advance, settle, spec, supervising


async def test_starts_in_order_and_stops_in_reverse(
    autojump_clock: trio.testing.MockClock, log: Log, recorder: Recorder
) -> None:
    workers = [Worker(n, log, start_delay=1.0) for n in "abc"]
    sup = Supervisor("sup", [spec(w) for w in workers], on_event=recorder)
    t0 = trio.current_time()
    async with supervising(sup):
        assert trio.current_time() - t0 == 3.0  # each start awaited before the next
        assert [s.started_at for s in sup.statuses()] == [t0 + 1, t0 + 2, t0 + 3]
        assert [s.state for s in sup.statuses()] == [ChildState.RUNNING] * 3
        assert recorder.pairs() == [(n, k) for n in "abc" for k in ("starting", "started")]
        recorder.clear()
    assert log.of("start") == ["a", "b", "c"]
    assert log.of("cancelled") == ["c", "b", "a"]
    assert recorder.pairs() == [(n, k) for n in "cba" for k in ("exited", "stopped")]
    assert {e.reason for e in recorder.events if e.kind == "exited"} == {"shutdown"}
    assert all(
        s.state is ChildState.STOPPED and s.started_at is None and s.last_exit == "shutdown"
        for s in sup.statuses()
    )


async def test_parallel_start_starts_children_concurrently(
    autojump_clock: trio.testing.MockClock, log: Log
) -> None:
    workers = [Worker(n, log, start_delay=1.0) for n in "abc"]
    sup = Supervisor("sup", [spec(w) for w in workers], parallel_start=True)
    t0 = trio.current_time()
    async with supervising(sup):
        assert trio.current_time() - t0 == 1.0
        assert [s.started_at for s in sup.statuses()] == [t0 + 1] * 3
    assert log.of("cancelled") == ["c", "b", "a"]


@pytest.mark.parametrize("parallel", [False, True])
async def test_child_dying_during_startup_does_not_block_siblings(
    autojump_clock: trio.testing.MockClock, log: Log, parallel: bool
) -> None:
    a, b, c = Worker("a", log), Worker("b", log, failing_starts=1), Worker("c", log)
    sup = Supervisor("sup", [spec(a), spec(b), spec(c)], parallel_start=parallel)
    async with supervising(sup):
        assert [s.state for s in sup.statuses()] == [
            ChildState.RUNNING,
            ChildState.BACKOFF,
            ChildState.RUNNING,
        ]
        assert sup.status("b").last_exit == "RuntimeError: b could not start"
        await advance(1.0)
        assert sup.status("b").state is ChildState.RUNNING
        assert sup.status("b").restarts == 1
        assert (a.starts, b.starts, c.starts) == (1, 2, 1)


async def test_child_returning_before_started_is_an_exit(
    autojump_clock: trio.testing.MockClock, log: Log, recorder: Recorder
) -> None:
    async def quitter(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        return

    sup = Supervisor(
        "sup",
        [ChildSpec("q", quitter, spec(Worker("q", log), RestartType.TRANSIENT).policy)],
        on_event=recorder,
    )
    async with supervising(sup):
        assert sup.status("q").state is ChildState.STOPPED
        assert recorder.kinds() == ["starting", "exited", "stopped"]
        assert recorder.events[1].reason == "normal"


async def test_status_snapshots(autojump_clock: trio.testing.MockClock, log: Log) -> None:
    w = Worker("w", log)
    sup = Supervisor("sup", [spec(w, RestartType.TRANSIENT)])
    before = sup.status("w")
    assert before == dataclasses.replace(
        before,
        state=ChildState.STOPPED,
        restarts=0,
        last_exit=None,
        started_at=None,
        next_restart_at=None,
        restart_type=RestartType.TRANSIENT,
    )
    async with supervising(sup):
        t_start = trio.current_time()
        running = sup.status("w")
        assert (running.state, running.started_at, running.next_restart_at) == (
            ChildState.RUNNING,
            t_start,
            None,
        )
        await advance(5.0)
        w.crash(ValueError("bad input"))
        await settle()
        backoff = sup.status("w")
        assert backoff.state is ChildState.BACKOFF
        assert backoff.started_at is None
        assert backoff.next_restart_at == t_start + 5.0 + 1.0
        assert backoff.last_exit == "ValueError: bad input"
        assert backoff.restarts == 0
        assert running.state is ChildState.RUNNING  # snapshots do not change afterwards
        with pytest.raises(dataclasses.FrozenInstanceError):
            running.state = ChildState.FAILED  # type: ignore[misc]
        await advance(1.0)
        again = sup.status("w")
        assert (again.state, again.restarts, again.started_at) == (
            ChildState.RUNNING,
            1,
            t_start + 6.0,
        )
        assert again.last_exit == "ValueError: bad input"
    assert sup.names() == ["w"]


async def test_duplicate_names_rejected(autojump_clock: trio.testing.MockClock, log: Log) -> None:
    with pytest.raises(ValueError, match="already has a child named 'a'"):
        Supervisor("sup", [spec(Worker("a", log)), spec(Worker("a", log))])


async def test_run_twice_is_refused(autojump_clock: trio.testing.MockClock, log: Log) -> None:
    sup = Supervisor("sup", [spec(Worker("a", log))])
    async with supervising(sup):
        with pytest.raises(RuntimeError, match="already running"):
            await sup.run()
    assert log.of("start") == ["a"]


async def test_supervisor_can_run_again_after_shutdown(
    autojump_clock: trio.testing.MockClock, log: Log
) -> None:
    a = Worker("a", log)
    sup = Supervisor("sup", [spec(a, max_restarts=1)])
    async with supervising(sup):
        a.crash()
        await advance(1.0)
    async with supervising(sup):
        assert sup.status("a").state is ChildState.RUNNING
        a.crash()  # the intensity window from the first run was forgotten
        await advance(1.0)
        assert sup.status("a").state is ChildState.RUNNING
    assert a.starts == 4


async def test_outer_cancellation_stops_children_and_returns(
    autojump_clock: trio.testing.MockClock, log: Log
) -> None:
    sup = Supervisor("sup", [spec(Worker(n, log)) for n in "ab"])
    with trio.move_on_after(5.0) as scope:
        await sup.run()
    assert scope.cancelled_caught
    assert log.of("cancelled") == ["b", "a"]


async def test_shutdown_waits_for_slow_cleanup_in_reverse_order(
    autojump_clock: trio.testing.MockClock, log: Log
) -> None:
    workers = [Worker(n, log, cleanup_delay=2.0) for n in "abc"]
    sup = Supervisor("sup", [spec(w) for w in workers])
    with trio.move_on_after(1.0):
        await sup.run()
    assert trio.current_time() == pytest.approx(1.0 + 3 * 2.0)  # one at a time
    assert log.of("cancelled") == ["c", "b", "a"]


async def test_keyboard_interrupt_propagates_after_stopping_siblings(
    autojump_clock: trio.testing.MockClock, log: Log
) -> None:
    a, b = Worker("a", log), Worker("b", log)
    sup = Supervisor("sup", [spec(a), spec(b)])
    with pytest.raises(BaseExceptionGroup) as info:
        async with supervising(sup):
            a.crash(KeyboardInterrupt())
            await settle()
    assert info.group_contains(KeyboardInterrupt)
    assert log.of("cancelled") == ["b"]
    assert [s.state for s in sup.statuses()] == [ChildState.STOPPED] * 2


async def test_failing_event_callback_is_logged_not_fatal(
    autojump_clock: trio.testing.MockClock, log: Log, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def on_event(event: SupervisorEvent) -> None:
        seen.append(event.kind)
        raise RuntimeError("callback bug")

    a = Worker("a", log)
    sup = Supervisor("sup", [spec(a)], on_event=on_event)
    with caplog.at_level(logging.ERROR, logger="actors"):
        async with supervising(sup):
            a.crash()
            await advance(1.0)
            assert sup.status("a").state is ChildState.RUNNING
    assert seen[:6] == ["starting", "started", "exited", "backoff", "starting", "started"]
    assert any("callback" in r.getMessage() for r in caplog.records)
    assert all(r.name == "actors" for r in caplog.records)


async def test_nested_supervisors(
    autojump_clock: trio.testing.MockClock, log: Log, recorder: Recorder
) -> None:
    a, b = Worker("a", log), Worker("b", log)
    inner = Supervisor("inner", [spec(a), spec(b)], on_event=recorder)
    x, y = Worker("x", log), Worker("y", log)
    outer = Supervisor("outer", [spec(x), ChildSpec("inner", inner.run), spec(y)], on_event=recorder)
    async with supervising(outer):
        assert log.of("start") == ["x", "a", "b", "y"]  # inner reports started after its children
        assert outer.status("inner").state is ChildState.RUNNING

        a.crash()  # handled by the inner supervisor alone
        await advance(1.0)
        assert [e.supervisor for e in recorder.events if e.child == "a"][-4:] == ["inner"] * 4
        assert outer.status("inner").restarts == 0
        assert inner.status("a").restarts == 1

        await outer.restart_child("inner")  # the outer one restarts the whole subtree
        assert log[-4:] == [("cancelled", "b"), ("cancelled", "a"), ("start", "a"), ("start", "b")]
        assert outer.status("inner").restarts == 1
        del log[:]
    assert log.of("cancelled") == ["y", "b", "a", "x"]


async def test_interrupt_during_shutdown_still_stops_every_child(
    autojump_clock: trio.testing.MockClock, log: Log
) -> None:
    def on_event(event: SupervisorEvent) -> None:
        if (event.child, event.kind) == ("b", "exited"):
            raise KeyboardInterrupt  # not an Exception: the supervisor must not swallow it

    sup = Supervisor("sup", [spec(Worker(n, log)) for n in "ab"], on_event=on_event)
    with pytest.raises(BaseExceptionGroup) as info:
        async with supervising(sup):
            pass
    assert info.group_contains(KeyboardInterrupt)
    assert log.of("cancelled") == ["b", "a"]  # "a" was not left running behind a shield
