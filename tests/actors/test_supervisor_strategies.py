"""one_for_one, one_for_all and rest_for_one, with the observable restart order."""

from __future__ import annotations

import trio
import trio.testing

from actors import ChildState, RestartType, Strategy, Supervisor

from .helpers import Log, Recorder, Worker, advance, settle, spec, supervising


def workers(log: Log, names: str) -> dict[str, Worker]:
    return {n: Worker(n, log) for n in names}


async def test_one_for_one_restarts_only_the_dead_child(
    autojump_clock: trio.testing.MockClock, log: Log, recorder: Recorder
) -> None:
    w = workers(log, "abc")
    sup = Supervisor("sup", [spec(x) for x in w.values()], on_event=recorder)
    async with supervising(sup):
        del log[:]
        recorder.clear()
        t_crash = trio.current_time()
        w["b"].crash()
        await settle()
        assert sup.status("b").state is ChildState.BACKOFF
        await advance(1.0)
        assert log == [("crash", "b"), ("start", "b")]
        assert recorder.pairs() == [
            ("b", "exited"),
            ("b", "backoff"),
            ("b", "starting"),
            ("b", "started"),
        ]
        assert recorder.events[0].reason == "RuntimeError: b crashed"
        assert recorder.events[1].delay == 1.0
        assert sup.status("b").started_at == t_crash + 1.0
        assert [s.restarts for s in sup.statuses()] == [0, 1, 0]


async def test_one_for_all_restarts_everyone_in_order(
    autojump_clock: trio.testing.MockClock, log: Log, recorder: Recorder
) -> None:
    w = workers(log, "abc")
    sup = Supervisor("sup", [spec(x) for x in w.values()], strategy=Strategy.ONE_FOR_ALL, on_event=recorder)
    async with supervising(sup):
        del log[:]
        recorder.clear()
        w["b"].crash()
        await settle()
        # siblings are stopped in reverse order right away, then wait out b's backoff
        assert log == [("crash", "b"), ("cancelled", "c"), ("cancelled", "a")]
        assert [s.state for s in sup.statuses()] == [ChildState.BACKOFF] * 3
        assert len({s.next_restart_at for s in sup.statuses()}) == 1
        assert sup.status("a").last_exit == "shutdown"
        await advance(1.0)
        assert log[3:] == [("start", "a"), ("start", "b"), ("start", "c")]
        assert [s.restarts for s in sup.statuses()] == [1, 1, 1]
        assert recorder.pairs()[:6] == [
            ("b", "exited"),
            ("c", "exited"),
            ("a", "exited"),
            ("a", "backoff"),
            ("b", "backoff"),
            ("c", "backoff"),
        ]

        # intensity/backoff is accounted on the child that died: b's next delay
        # doubles, whereas a's first death still waits the initial delay.
        recorder.clear()
        w["b"].crash()
        await advance(2.0)
        w["a"].crash()
        await settle()
        delays = [(e.child, e.delay) for e in recorder.events if e.kind == "backoff"]
        assert delays[:3] == [("a", 2.0), ("b", 2.0), ("c", 2.0)]
        assert delays[3:] == [("a", 1.0), ("b", 1.0), ("c", 1.0)]


async def test_one_for_all_does_not_restart_temporary_or_stopped_siblings(
    autojump_clock: trio.testing.MockClock, log: Log, recorder: Recorder
) -> None:
    w = workers(log, "atso")
    sup = Supervisor(
        "sup",
        [spec(w["a"]), spec(w["t"], RestartType.TEMPORARY), spec(w["s"]), spec(w["o"])],
        strategy=Strategy.ONE_FOR_ALL,
        on_event=recorder,
    )
    async with supervising(sup):
        await sup.stop_child("s")
        recorder.clear()
        w["o"].crash()
        await advance(1.0)
        assert [s.state for s in sup.statuses()] == [
            ChildState.RUNNING,
            ChildState.STOPPED,
            ChildState.STOPPED,
            ChildState.RUNNING,
        ]
        assert (w["a"].starts, w["t"].starts, w["s"].starts, w["o"].starts) == (2, 1, 1, 2)
        assert [k for c, k in recorder.pairs() if c == "t"] == ["exited", "stopped"]
        assert [c for c, _ in recorder.pairs()].count("s") == 0


async def test_rest_for_one_restarts_the_dead_child_and_those_after_it(
    autojump_clock: trio.testing.MockClock, log: Log
) -> None:
    w = workers(log, "abcd")
    sup = Supervisor("sup", [spec(x) for x in w.values()], strategy=Strategy.REST_FOR_ONE)
    async with supervising(sup):
        del log[:]
        w["b"].crash()
        await advance(1.0)
        assert log == [
            ("crash", "b"),
            ("cancelled", "d"),
            ("cancelled", "c"),
            ("start", "b"),
            ("start", "c"),
            ("start", "d"),
        ]
        assert [s.restarts for s in sup.statuses()] == [0, 1, 1, 1]


async def test_rest_for_one_failure_during_group_restart_holds_back_later_children(
    autojump_clock: trio.testing.MockClock, log: Log
) -> None:
    w = workers(log, "abc")
    sup = Supervisor("sup", [spec(x) for x in w.values()], strategy=Strategy.REST_FOR_ONE)
    async with supervising(sup):
        del log[:]
        w["b"].failing_starts = 1
        w["a"].crash()
        await advance(1.0)
        # b failed to come back: c must not be started ahead of it
        assert log == [
            ("crash", "a"),
            ("cancelled", "c"),
            ("cancelled", "b"),
            ("start", "a"),
            ("start", "b"),
        ]
        assert [s.state for s in sup.statuses()] == [
            ChildState.RUNNING,
            ChildState.BACKOFF,
            ChildState.BACKOFF,
        ]
        await advance(1.0)
        assert log[5:] == [("start", "b"), ("start", "c")]
        assert [s.state for s in sup.statuses()] == [ChildState.RUNNING] * 3


async def test_rest_for_one_merges_pending_restarts(autojump_clock: trio.testing.MockClock, log: Log) -> None:
    w = workers(log, "abc")
    sup = Supervisor("sup", [spec(x) for x in w.values()], strategy=Strategy.REST_FOR_ONE)
    async with supervising(sup):
        w["c"].crash()
        await settle()
        await advance(0.5)
        del log[:]
        w["a"].crash()  # c is still backing off; it joins a's group restart
        await settle()
        assert {sup.status(n).next_restart_at for n in "abc"} == {trio.current_time() + 1.0}
        await advance(1.0)
        assert log == [("crash", "a"), ("cancelled", "b"), ("start", "a"), ("start", "b"), ("start", "c")]
        assert w["c"].starts == 2
