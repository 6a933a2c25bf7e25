"""Operator controls: restart/stop/start/add/remove, called from other tasks."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from actors import ChildSpec, ChildState, Supervisor, UnknownChild

from .helpers import Log, Recorder, Worker, advance, settle, spec, supervising


async def test_stop_child_then_start_child(
    autojump_clock: trio.testing.MockClock, log: Log, recorder: Recorder
) -> None:
    a, b = Worker("a", log), Worker("b", log)
    sup = Supervisor("sup", [spec(a), spec(b)], on_event=recorder)
    async with supervising(sup):
        recorder.clear()
        await sup.stop_child("a")
        assert sup.status("a").state is ChildState.STOPPED
        assert sup.status("a").last_exit == "shutdown"
        assert recorder.pairs() == [("a", "exited"), ("a", "stopped")]
        await sup.stop_child("a")  # already stopped: nothing happens
        assert len(recorder.events) == 2
        await advance(1000.0)
        assert a.starts == 1  # no automatic restart

        await sup.start_child("a")
        assert sup.status("a").state is ChildState.RUNNING
        assert sup.status("a").restarts == 0  # start_child is not a restart
        await sup.start_child("a")  # already running: no-op
        assert a.starts == 2
        assert sup.status("b").state is ChildState.RUNNING


async def test_stop_child_during_backoff_cancels_the_restart(
    autojump_clock: trio.testing.MockClock, log: Log
) -> None:
    a = Worker("a", log)
    sup = Supervisor("sup", [spec(a)])
    async with supervising(sup):
        a.crash()
        await settle()
        assert sup.status("a").state is ChildState.BACKOFF
        await sup.stop_child("a")
        status = sup.status("a")
        assert (status.state, status.next_restart_at) == (ChildState.STOPPED, None)
        await advance(100.0)
        assert a.starts == 1


async def test_start_child_during_backoff_starts_it_early(
    autojump_clock: trio.testing.MockClock, log: Log
) -> None:
    a = Worker("a", log)
    sup = Supervisor("sup", [spec(a)])
    async with supervising(sup):
        a.crash()
        await settle()
        t = trio.current_time()
        await sup.start_child("a")
        assert sup.status("a").state is ChildState.RUNNING
        assert sup.status("a").started_at == t
        await advance(100.0)
        assert a.starts == 2  # the pending restart was dropped


async def test_start_child_revives_a_failed_child_with_a_fresh_window(
    autojump_clock: trio.testing.MockClock, log: Log
) -> None:
    a = Worker("a", log)
    sup = Supervisor("sup", [spec(a, max_restarts=1)])
    async with supervising(sup):
        a.crash()
        await advance(1.0)
        a.crash()
        await settle()
        assert sup.status("a").state is ChildState.FAILED
        await sup.start_child("a")
        assert sup.status("a").state is ChildState.RUNNING
        a.crash()  # within the old window, but start_child cleared it
        await settle()
        assert sup.status("a").state is ChildState.BACKOFF


async def test_restart_child_restarts_a_running_child(
    autojump_clock: trio.testing.MockClock, log: Log, recorder: Recorder
) -> None:
    a, b = Worker("a", log, start_delay=2.0), Worker("b", log)
    sup = Supervisor("sup", [spec(a), spec(b)], on_event=recorder)
    async with supervising(sup):
        del log[:]
        recorder.clear()
        t = trio.current_time()
        await sup.restart_child("a")
        assert trio.current_time() - t == 2.0  # returned once RUNNING again
        assert log == [("cancelled", "a"), ("start", "a")]
        assert recorder.pairs() == [("a", "exited"), ("a", "starting"), ("a", "started")]
        assert recorder.events[0].reason == "shutdown"
        assert sup.status("a").restarts == 1
        assert sup.status("b").restarts == 0


async def test_restart_child_returns_when_the_child_dies_again(
    autojump_clock: trio.testing.MockClock, log: Log
) -> None:
    a = Worker("a", log)
    sup = Supervisor("sup", [spec(a)])
    async with supervising(sup):
        a.failing_starts = 1
        await sup.restart_child("a")
        assert sup.status("a").state is ChildState.BACKOFF
        assert sup.status("a").last_exit == "RuntimeError: a could not start"
        await advance(1.0)  # the supervision loop picked up the new deadline
        assert sup.status("a").state is ChildState.RUNNING
        assert sup.status("a").restarts == 2


async def test_add_child_appends_and_supervises_it(autojump_clock: trio.testing.MockClock, log: Log) -> None:
    a, n = Worker("a", log), Worker("new", log)
    sup = Supervisor("sup", [spec(a)])
    async with supervising(sup):
        await sup.add_child(spec(n))
        assert sup.names() == ["a", "new"]
        assert sup.status("new").state is ChildState.RUNNING
        with pytest.raises(ValueError, match="already has a child named 'a'"):
            await sup.add_child(spec(Worker("a", log)))
        n.crash()
        await advance(1.0)
        assert n.starts == 2
    assert log.of("cancelled") == ["new", "a"]


async def test_remove_child_stops_and_forgets_it(
    autojump_clock: trio.testing.MockClock, log: Log, recorder: Recorder
) -> None:
    a, b = Worker("a", log), Worker("b", log)
    sup = Supervisor("sup", [spec(a), spec(b)], on_event=recorder)
    async with supervising(sup):
        recorder.clear()
        await sup.remove_child("a")
        assert sup.names() == ["b"]
        assert log.of("cancelled") == ["a"]
        assert recorder.pairs() == [("a", "exited"), ("a", "stopped")]
        with pytest.raises(UnknownChild):
            sup.status("a")


Control = Callable[[Supervisor], Awaitable[None]]
CONTROLS: dict[str, Control] = {
    "restart_child": lambda s: s.restart_child("nope"),
    "stop_child": lambda s: s.stop_child("nope"),
    "start_child": lambda s: s.start_child("nope"),
    "remove_child": lambda s: s.remove_child("nope"),
}


@pytest.mark.parametrize("control", CONTROLS.values(), ids=CONTROLS.keys())
async def test_unknown_child_lists_known_names(
    autojump_clock: trio.testing.MockClock, log: Log, control: Control
) -> None:
    sup = Supervisor("sup", [spec(Worker("a", log)), spec(Worker("b", log))])
    async with supervising(sup):
        with pytest.raises(UnknownChild, match=r"unknown child 'nope' \(known: a, b\)") as info:
            await control(sup)
        assert info.value.known == ("a", "b")
    with pytest.raises(UnknownChild):
        sup.status("nope")


@pytest.mark.parametrize(
    "control", [*CONTROLS.values(), lambda s: s.add_child(ChildSpec("x", Worker("x", Log()).run))]
)
async def test_controls_require_a_running_supervisor(
    autojump_clock: trio.testing.MockClock, log: Log, control: Control
) -> None:
    sup = Supervisor("sup")
    with pytest.raises(RuntimeError, match=r"not running; call run\(\) first"):
        await control(sup)
    async with supervising(sup):
        pass
    with pytest.raises(RuntimeError, match="not running"):
        await control(sup)


async def test_control_revalidates_after_waiting_for_the_lock(
    autojump_clock: trio.testing.MockClock, log: Log
) -> None:
    slow = Worker("slow", log, start_delay=5.0)
    sup = Supervisor("sup", [spec(slow)])
    outcome: list[str] = []

    async def stop_later() -> None:
        try:
            await sup.stop_child("slow")
        except UnknownChild:
            outcome.append("unknown")

    async with supervising(sup) as nursery:
        nursery.start_soon(sup.restart_child, "slow")  # holds the lock for 5s
        await settle()
        nursery.start_soon(sup.remove_child, "slow")
        await settle()
        nursery.start_soon(stop_later)  # queued behind the removal
        await advance(5.0)
        assert sup.names() == []
        assert outcome == ["unknown"]


async def test_shutdown_racing_a_control_call(
    autojump_clock: trio.testing.MockClock, log: Log, recorder: Recorder
) -> None:
    a = Worker("a", log, cleanup_delay=2.0)
    sup = Supervisor("sup", [spec(a)], on_event=recorder)
    errors: list[str] = []

    async def call(control: Callable[[str], Awaitable[None]]) -> None:
        try:
            await control("a")
        except RuntimeError as exc:
            errors.append(str(exc))

    async with trio.open_nursery() as callers, trio.open_nursery() as running:
        await running.start(sup.run)
        callers.start_soon(call, sup.restart_child)  # stopping "a" takes 2s ...
        await settle()
        callers.start_soon(call, sup.stop_child)  # (queued for the lock)
        await settle()
        running.cancel_scope.cancel()  # ... and shutdown starts meanwhile
    assert errors[0] == "supervisor 'sup' is shutting down"
    # the queued call gets the lock during or just after shutdown; refused either way
    assert len(errors) == 2
    assert re.fullmatch(r"supervisor 'sup' is (shutting down|not running; call run\(\) first)", errors[1])
    assert recorder.kinds("a")[2:] == ["exited", "stopped"]  # reported once, not twice
    assert log.of("start") == ["a"]


async def test_child_dying_at_startup_during_shutdown_is_not_restarted(
    autojump_clock: trio.testing.MockClock, log: Log, recorder: Recorder
) -> None:
    a = Worker("a", log)
    b = Worker("b", log, cleanup_delay=5.0)
    sup = Supervisor("sup", [spec(a), spec(b)], on_event=recorder)
    async with trio.open_nursery() as callers, trio.open_nursery() as running:
        await running.start(sup.run)
        a.failing_starts, a.start_delay = 1, 2.0
        callers.start_soon(sup.restart_child, "a")  # "a" dies at startup 2s from now ...
        await settle()
        running.cancel_scope.cancel()  # ... while shutdown is still stopping "b"
    assert recorder.kinds("a")[3:] == ["starting", "exited", "stopped"]  # no "backoff"
    assert sup.status("a").state is ChildState.STOPPED
    assert sup.status("a").last_exit == "RuntimeError: a could not start"
    assert log.of("start") == ["a", "b", "a"]


async def test_a_child_cannot_stop_itself_through_the_supervisor(
    autojump_clock: trio.testing.MockClock, log: Log
) -> None:
    sup: Supervisor

    async def suicidal(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep(1.0)
        await sup.stop_child("s")

    sup = Supervisor("sup", [ChildSpec("s", suicidal, spec(Worker("s", log)).policy)])
    async with supervising(sup):
        await advance(1.0)
        assert "cannot stop itself" in (sup.status("s").last_exit or "")
        assert sup.status("s").state is ChildState.BACKOFF


async def test_control_calls_during_shutdown_are_refused(
    autojump_clock: trio.testing.MockClock, log: Log
) -> None:
    sup = Supervisor("sup", [spec(Worker("a", log, cleanup_delay=2.0))])
    async with trio.open_nursery() as outer:
        await outer.start(sup.run)
        outer.cancel_scope.cancel()
        with trio.CancelScope(shield=True):
            await settle()  # shutdown is now waiting for "a" to clean up
            with pytest.raises(RuntimeError, match="'sup' is shutting down"):
                await sup.stop_child("a")


async def test_restart_interrupted_by_shutdown_returns_quietly(
    autojump_clock: trio.testing.MockClock, log: Log, recorder: Recorder
) -> None:
    a = Worker("a", log)
    sup = Supervisor("sup", [spec(a)], on_event=recorder)
    done: list[str] = []

    async def restart() -> None:
        await sup.restart_child("a")
        done.append("returned")

    async with trio.open_nursery() as callers, trio.open_nursery() as running:
        await running.start(sup.run)
        a.start_delay = 5.0
        callers.start_soon(restart)  # "a" is STARTING for 5s ...
        await settle()
        running.cancel_scope.cancel()  # ... and the supervisor is stopped meanwhile
    assert done == ["returned"]
    assert recorder.kinds("a")[-2:] == ["exited", "stopped"]
    assert "backoff" not in recorder.kinds("a")


async def test_started_twice_is_an_error(autojump_clock: trio.testing.MockClock, log: Log) -> None:
    async def eager(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        task_status.started()

    sup = Supervisor("sup", [ChildSpec("e", eager, spec(Worker("e", log), max_restarts=0).policy)])
    async with supervising(sup):
        assert sup.status("e").state is ChildState.FAILED
        assert sup.status("e").last_exit == ("RuntimeError: called 'started' twice on the same task status")


async def test_repr(autojump_clock: trio.testing.MockClock, log: Log) -> None:
    sup = Supervisor("sup", [spec(Worker("a", log))])
    assert repr(sup) == "<Supervisor 'sup' one_for_one children=['a']>"
