"""Restart types, backoff timing and restart intensity, observed through a supervisor."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from actors import Backoff, ChildState, RestartType, Supervisor

from .helpers import Log, Recorder, Worker, advance, settle, spec, supervising


async def test_permanent_child_is_restarted_after_a_normal_exit(
    autojump_clock: trio.testing.MockClock, log: Log, recorder: Recorder
) -> None:
    w = Worker("w", log)
    sup = Supervisor("sup", [spec(w)], on_event=recorder)
    async with supervising(sup):
        w.finish()
        await advance(1.0)
        assert sup.status("w").state is ChildState.RUNNING
        assert sup.status("w").last_exit == "normal"
        assert recorder.kinds()[2:] == ["exited", "backoff", "starting", "started"]


async def test_transient_child_stays_down_after_a_normal_exit(
    autojump_clock: trio.testing.MockClock, log: Log, recorder: Recorder
) -> None:
    w = Worker("w", log)
    sup = Supervisor("sup", [spec(w, RestartType.TRANSIENT)], on_event=recorder)
    async with supervising(sup):
        w.finish()
        await advance(100.0)
        assert sup.status("w").state is ChildState.STOPPED
        assert sup.status("w").last_exit == "normal"
        assert w.starts == 1
        assert recorder.kinds()[2:] == ["exited", "stopped"]
        assert recorder.events[2].reason == "normal"


async def test_transient_child_is_restarted_after_a_crash(
    autojump_clock: trio.testing.MockClock, log: Log
) -> None:
    w = Worker("w", log)
    sup = Supervisor("sup", [spec(w, RestartType.TRANSIENT)])
    async with supervising(sup):
        w.crash(OSError("pipe closed"))
        await advance(1.0)
        assert sup.status("w").state is ChildState.RUNNING
        assert sup.status("w").last_exit == "OSError: pipe closed"
        assert w.starts == 2


async def test_temporary_child_is_never_restarted(
    autojump_clock: trio.testing.MockClock, log: Log, recorder: Recorder
) -> None:
    w = Worker("w", log)
    sup = Supervisor("sup", [spec(w, RestartType.TEMPORARY)], on_event=recorder)
    async with supervising(sup):
        w.crash()
        await advance(100.0)
        assert sup.status("w").state is ChildState.STOPPED
        assert sup.status("w").last_exit == "RuntimeError: w crashed"
        assert w.starts == 1
        assert recorder.kinds()[2:] == ["exited", "stopped"]


async def test_backoff_grows_exponentially_up_to_max(
    autojump_clock: trio.testing.MockClock, log: Log, recorder: Recorder
) -> None:
    w = Worker("w", log)
    sup = Supervisor("sup", [spec(w, max_restarts=100)], on_event=recorder)
    gaps = []
    async with supervising(sup):
        for _ in range(6):
            crashed_at = trio.current_time()
            w.crash()
            await settle()
            status = sup.status("w")
            assert status.state is ChildState.BACKOFF
            assert status.next_restart_at is not None
            await advance(status.next_restart_at - trio.current_time())
            restarted = sup.status("w")
            assert restarted.state is ChildState.RUNNING
            assert restarted.started_at is not None
            gaps.append(restarted.started_at - crashed_at)
    assert gaps == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert [e.delay for e in recorder.events if e.kind == "backoff"] == gaps


async def test_backoff_includes_bounded_jitter(autojump_clock: trio.testing.MockClock, log: Log) -> None:
    w = Worker("w", log)
    jittery = Backoff(initial=1.0, max=100.0, multiplier=2.0, jitter=0.5)
    sup = Supervisor("sup", [spec(w, max_restarts=100, backoff=jittery)])
    gaps = []
    async with supervising(sup):
        for _ in range(20):
            w.crash()
            await settle()
            crashed_at = trio.current_time()
            await advance(100.0)
            started_at = sup.status("w").started_at
            assert started_at is not None
            gaps.append(started_at - crashed_at)
            await advance(60.0)  # long healthy run: attempt counter back to 0
    assert all(1.0 <= g <= 1.5 for g in gaps)
    assert len(set(gaps)) > 1


async def test_backoff_attempt_resets_after_a_long_healthy_run(
    autojump_clock: trio.testing.MockClock, log: Log, recorder: Recorder
) -> None:
    w = Worker("w", log)
    sup = Supervisor("sup", [spec(w, max_restarts=100, reset_after=30.0)], on_event=recorder)
    async with supervising(sup):
        for _ in range(3):
            w.crash()
            await advance(10.0)  # back up after <= 4s, then runs < 30s
        await advance(30.0)  # now it has been RUNNING for >= reset_after
        w.crash()
        await advance(10.0)
    assert [e.delay for e in recorder.events if e.kind == "backoff"] == [1.0, 2.0, 4.0, 1.0]


async def test_intensity_exceeded_fails_the_child_but_not_the_supervisor(
    autojump_clock: trio.testing.MockClock,
    log: Log,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad, good = Worker("bad", log), Worker("good", log)
    sup = Supervisor(
        "sup",
        [spec(bad, max_restarts=2, within_seconds=60.0), spec(good)],
        on_event=recorder,
    )
    with caplog.at_level(logging.DEBUG, logger="actors"):
        async with supervising(sup):
            for _ in range(3):
                bad.crash()
                await advance(5.0)
            status = sup.status("bad")
            assert status.state is ChildState.FAILED
            assert (status.restarts, status.next_restart_at, status.started_at) == (2, None, None)
            assert recorder.events[-1].kind == "failed"
            assert recorder.events[-1].reason == "RuntimeError: bad crashed"
            await advance(1000.0)
            assert bad.starts == 3  # stays down, no spinning

            good.crash()  # the siblings are still supervised
            await advance(1.0)
            assert sup.status("good").state is ChildState.RUNNING

            await sup.restart_child("bad")  # operator brings it back with a fresh window
            assert sup.status("bad").state is ChildState.RUNNING
            assert sup.status("bad").restarts == 3
            for _ in range(2):
                bad.crash()
                await advance(5.0)
            assert sup.status("bad").state is ChildState.RUNNING
            backoffs = [e.delay for e in recorder.events if e.child == "bad" and e.kind == "backoff"]
            assert backoffs == [1.0, 2.0, 1.0, 2.0]  # attempt counter was reset too
    # its owner takes the events (recorder) and reports them: the runtime says them at debug only
    said = {r.getMessage(): r.levelno for r in caplog.records}
    assert said["sup/bad exited: RuntimeError: bad crashed"] == logging.DEBUG
    assert said["sup/bad restarted too often; giving up"] == logging.DEBUG


async def test_restarts_spread_beyond_the_window_never_fail(
    autojump_clock: trio.testing.MockClock, log: Log
) -> None:
    w = Worker("w", log)
    flat = Backoff(initial=1.0, multiplier=1.0, jitter=0.0)
    sup = Supervisor("sup", [spec(w, max_restarts=2, within_seconds=10.0, backoff=flat)])
    async with supervising(sup):
        for _ in range(6):
            w.crash()
            await advance(6.0)
        assert sup.status("w").state is ChildState.RUNNING
        assert sup.status("w").restarts == 6


async def test_a_supervisor_nobody_listens_to_logs_its_childrens_ends_itself(
    autojump_clock: trio.testing.MockClock, log: Log, caplog: pytest.LogCaptureFixture
) -> None:
    bad = Worker("bad", log)
    sup = Supervisor("sup", [spec(bad, max_restarts=0, within_seconds=60.0)])
    with caplog.at_level(logging.DEBUG, logger="actors"):
        async with supervising(sup):
            bad.crash()
            await advance(5.0)
    said = {r.getMessage(): r.levelno for r in caplog.records}
    assert said["sup/bad exited: RuntimeError: bad crashed"] == logging.WARNING
    assert said["sup/bad restarted too often; giving up"] == logging.ERROR
