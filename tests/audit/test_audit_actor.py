"""The audit actor: confirmation, fsync policies, failures, backpressure, payloads, sinks."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import watchgate.audit.chain as chain_module
from actors import Reply, SupervisorEvent
from watchgate.audit import AuditActor, AuditEntry, lifecycle_entry, supervisor_entry
from watchgate.audit.actor import HOLD_REQUEST_FOR, Confirm
from watchgate.audit.record import RECOVERED, AuditRecord
from watchgate.audit.verify import verify_log
from watchgate.errors import AuditUnavailable, JsonRpcError

from .helpers import Clock, MemorySink, audit_config, call, records, running


def actor_for(path: Path, *, sinks: list[Any] | None = None, **config: Any) -> AuditActor:
    return AuditActor(audit_config(path, **config), sinks=sinks or [], threaded=False, wall_clock=Clock())


async def test_records_are_written_in_order_and_confirmed(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "audit.jsonl"
    async with running(actor_for(path)) as actor:
        for i in range(3):  # records nobody waits for (a request's would wait for its answer)
            await actor.tell(call(i, event="notification"))
        confirmed = await actor.write_and_confirm(call(99, event="response", decision="allow", duration_ms=2))
        assert confirmed is not None and confirmed.seq == 4
        assert records(path)[-1] == confirmed  # in the file before write_and_confirm returned
        status = actor.status()
        assert (status.healthy, status.records_written, status.records_lost, status.pending) == (
            True,
            5,
            0,
            0,
        )
        assert status.mailbox_depth == 0 and status.path == str(path) and status.enabled
    assert [r.request_id for r in records(path)] == [None, 0, 1, 2, 99]
    assert verify_log(str(path)).ok


async def test_a_call_record_is_written_without_a_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread hop per tool call cost ~0.5 ms: only fsync, rotation and opening use one."""
    threaded: list[str] = []
    real = trio.to_thread.run_sync

    async def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
        threaded.append(getattr(fn, "__qualname__", repr(fn)))
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(trio.to_thread, "run_sync", counting)
    path = tmp_path / "audit.jsonl"
    async with running(AuditActor(audit_config(path, fsync="interval", fsync_interval=60))) as actor:
        for i in range(50):
            await actor.tell(request := call(i))
            assert await actor.write_and_confirm(call(i, event="response"), opened_by=request) is not None
        assert len(records(path)) == 51  # in the file as soon as confirmed: one call record each
        assert {r.event for r in records(path)[1:]} == {"call"}
        assert [name.rsplit(".", 1)[-1] for name in threaded] == ["open"]
    assert verify_log(str(path)).ok


async def test_queued_records_go_before_one_written_inline(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "audit.jsonl"
    async with running(actor_for(path)) as actor:
        actor.tell_nowait(call(1))  # in the mailbox: the actor has not run since
        actor.tell_nowait(call(2))
        confirmed = await actor.write_and_confirm(call(3))
        assert confirmed is not None and confirmed.seq == 3
    assert [r.request_id for r in records(path)] == [None, 1, 2, 3]


async def test_the_real_worker_thread_path(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    actor = AuditActor(audit_config(path, fsync="always"))
    async with running(actor):
        await actor.tell(call(1))
        assert await actor.write_and_confirm(call(2)) is not None
    assert len(records(path)) == 3 and verify_log(str(path)).ok


async def test_stop_writes_what_is_still_queued(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "audit.jsonl"
    slow = MemorySink(delay=1.0)
    actor = actor_for(path, sinks=[slow])
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await actor.tell(call(1))
        await trio.sleep(0.5)  # the actor is inside the slow sink, shielded
        for i in range(2, 5):
            await actor.tell(call(i))
        actor.stop()
    assert [r.request_id for r in records(path)][1:] == [1, 2, 3, 4]
    assert len(slow.got) == 5 and slow.closed


async def test_records_queued_before_the_actor_starts_are_kept(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "audit.jsonl"
    actor = actor_for(path)
    actor.tell_nowait(call(1))
    async with running(actor):
        await trio.sleep(0.1)
    assert [r.request_id for r in records(path)] == [None, 1]


# -- fsync ---------------------------------------------------------------------------------------


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The trio time of every os.fsync call."""
    calls: list[float] = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(trio.current_time()))
    return calls


async def test_fsync_interval_syncs_once_per_interval_and_only_when_dirty(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, fsyncs: list[float]
) -> None:
    async with running(actor_for(tmp_path / "audit.jsonl", fsync="interval", fsync_interval=1.0)) as actor:
        await trio.sleep(0.5)
        assert fsyncs == []  # the header is written, not yet synced
        await trio.sleep(0.6)
        assert fsyncs == [1.0]
        await trio.sleep(0.4)  # t = 1.5
        for i in range(3):
            await actor.tell(call(i))
            await trio.sleep(0.1)
        await trio.sleep(5)
        # three records, one fsync, a second after the first of them was written (held for
        # HOLD_REQUEST_FOR: nobody answered it)
        assert fsyncs == [1.0, 1.5 + HOLD_REQUEST_FOR + 1.0]
    assert len(fsyncs) == 3  # and one when closing


async def test_fsync_always_syncs_before_confirming(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, fsyncs: list[float]
) -> None:
    async with running(actor_for(tmp_path / "audit.jsonl", fsync="always")) as actor:
        for i in range(3):
            before = len(fsyncs)
            await actor.write_and_confirm(call(i))
            assert len(fsyncs) == before + 1
        await trio.sleep(10)
        assert len(fsyncs) == 3


async def test_fsync_never(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, fsyncs: list[float]
) -> None:
    path = tmp_path / "audit.jsonl"
    async with running(actor_for(path, fsync="never", max_bytes=4096)) as actor:
        for i in range(40):  # enough to rotate
            await actor.tell(call(i))
        await trio.sleep(10)
    assert fsyncs == [] and (tmp_path / "audit.jsonl.1").exists()


async def test_a_failing_interval_fsync_makes_the_log_unhealthy_until_reopened(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    failing = True

    def fsync(fd: int) -> None:
        if failing:
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync)
    async with running(actor_for(path)) as actor:
        await trio.sleep(1.1)
        assert not actor.healthy and actor.last_error == "[Errno 5] Input/output error"
        failing = False
        await trio.sleep(1.0)
        assert actor.healthy
    assert [r.method for r in records(path)] == ["genesis", "resume", RECOVERED]
    assert verify_log(str(path)).ok


# -- failures ---------------------------------------------------------------------------------


async def test_unwritable_path_blocks_with_a_clear_error_then_recovers(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the log folder should be")
    path = blocker / "audit.jsonl"
    async with running(actor_for(path)) as actor:
        assert not actor.healthy
        assert actor.last_error is not None and "Not a directory" in actor.last_error
        with pytest.raises(AuditUnavailable) as info:
            await actor.tell(call(1))
        error = info.value
        assert isinstance(error, JsonRpcError) and error.code == -32011
        assert str(path) in error.message and "Not a directory" in error.message
        assert error.data == {"path": str(path), "error": actor.last_error}
        with pytest.raises(AuditUnavailable):
            await actor.write_and_confirm(call(2))
        with pytest.raises(AuditUnavailable):
            actor.tell_nowait(call(3))
        await trio.sleep(3.5)
        assert not actor.healthy and actor.status().records_written == 0  # retried, still failing
        blocker.unlink()
        await trio.sleep(1.0)
        assert actor.healthy
        assert await actor.write_and_confirm(call(4)) is not None
    genesis, recovered, last = records(path)
    assert (genesis.method, recovered.method, last.request_id) == ("genesis", RECOVERED, 4)
    assert recovered.reason is not None and "writable again after" in recovered.reason
    assert "Not a directory" in recovered.reason
    assert verify_log(str(path)).ok
    assert "cannot write" in caplog.text and "writable again" in caplog.text


async def test_a_full_disk_mid_stream_keeps_told_records_and_refuses_new_ones(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    real = chain_module._write_all
    full = False

    def write(fd: int, data: bytes) -> None:
        if full:
            real(fd, data[:7])  # a partial write, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(chain_module, "_write_all", write)
    async with running(actor_for(path)) as actor:
        await actor.write_and_confirm(call(1))
        full = True
        await actor.tell(call(2))  # accepted: the failure is not known yet
        with pytest.raises(AuditUnavailable, match="No space left on device"):
            await actor.write_and_confirm(call(3))
        with pytest.raises(AuditUnavailable):
            await actor.tell(call(4))
        assert actor.status().pending == 1
        await trio.sleep(2.5)
        assert actor.status().pending == 1  # retries fail too, nothing is dropped
        full = False
        await trio.sleep(1.0)
        assert actor.healthy and actor.status().pending == 0
    methods = [(r.method, r.request_id) for r in records(path)]
    assert methods[:2] == [("genesis", None), ("tools/call", 1)]
    assert methods[-3:] == [("resume", None), (RECOVERED, None), ("tools/call", 2)]
    assert all(request_id != 3 for _, request_id in methods)  # refused to its caller, not written
    recovered, waited = records(path)[-2:]
    assert recovered.reason is not None and "1 records waited and follow" in recovered.reason
    assert waited.time < recovered.time  # it carries the time it was told, not the time it was written
    assert verify_log(str(path)).ok


async def test_stopping_while_records_wait_says_so(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "logs").write_text("a file where the log folder should be")
    actor = actor_for(tmp_path / "logs" / "audit.jsonl")
    actor.tell_nowait(call(1))  # queued before the first open fails
    async with running(actor):
        await trio.sleep(0.1)
        assert actor.status().pending == 1
    assert "audit: 1 records are still waiting for" in caplog.text
    assert actor.status().pending == 1  # kept for the next incarnation


async def test_a_confirm_queued_before_the_failure_is_refused(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    (tmp_path / "logs").write_text("not a folder")
    actor = actor_for(tmp_path / "logs" / "audit.jsonl")
    reply: Reply[AuditRecord | None] = Reply()
    actor.tell_nowait(Confirm(call(1), reply))  # admitted: nothing has failed yet
    async with running(actor):
        with pytest.raises(AuditUnavailable, match="Not a directory"):
            await reply.wait()
    assert actor.status().pending == 0  # its caller knows; it is not written later


async def test_a_restarted_writer_recovers_through_the_retry(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    (tmp_path / "logs").write_text("not a folder")
    path = tmp_path / "logs" / "audit.jsonl"
    actor = actor_for(path)
    async with running(actor):
        await trio.sleep(0.1)
    assert not actor.healthy
    (tmp_path / "logs").unlink()
    async with running(actor):  # what a supervisor does after a crash: the same actor again
        assert not actor.healthy  # no second open: the next retry (within a second) reopens
        await trio.sleep(1.0)
        assert actor.healthy
    assert [r.method for r in records(path)] == ["genesis", RECOVERED]


async def test_a_retry_that_fails_while_writing_keeps_what_waits(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    real = chain_module._write_all
    budget: list[int] = []  # while set: how many more writes may succeed

    def write(fd: int, data: bytes) -> None:
        if budget:
            if budget[0] == 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            budget[0] -= 1
        real(fd, data)

    monkeypatch.setattr(chain_module, "_write_all", write)
    async with running(actor_for(path)) as actor:
        budget.append(0)
        actor.tell_nowait(call(1))  # both in one batch, which fails
        actor.tell_nowait(call(2))
        await trio.sleep(0.1)
        assert not actor.healthy and actor.status().pending == 2
        budget[0] = 1  # the next retry reopens (header written), then fails on the rest
        await trio.sleep(1.0)
        assert not actor.healthy and actor.status().pending == 2
        budget.clear()
        await trio.sleep(1.0)
        assert actor.healthy
    assert [r.request_id for r in records(path) if r.request_id is not None] == [1, 2]
    assert verify_log(str(path)).ok


async def test_on_failure_continue_counts_lost_records(
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "audit.jsonl"
    disk_full = True
    real = chain_module._write_all

    def write(fd: int, data: bytes) -> None:
        if disk_full:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(chain_module, "_write_all", write)
    async with running(actor_for(path, on_failure="continue")) as actor:
        assert not actor.healthy
        await actor.tell(call(1))
        assert await actor.write_and_confirm(call(2)) is None
        actor.tell_nowait(call(3))
        await trio.sleep(0.1)
        assert actor.records_lost == 3 and actor.status().records_lost == 3
        disk_full = False
        await trio.sleep(1.0)
        assert actor.healthy
        assert await actor.write_and_confirm(call(4)) is not None
    assert "3 lost in all" in caplog.text
    _genesis, recovered, last = records(path)
    assert recovered.reason is not None
    assert "3 records were lost (audit.on_failure: continue)" in recovered.reason
    assert "No space left on device" in recovered.reason
    assert last.request_id == 4
    assert verify_log(str(path)).ok


async def test_disabled_audit_accepts_and_writes_nothing(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "audit.jsonl"
    async with running(actor_for(path, enabled=False)) as actor:
        await actor.tell(call(1))
        actor.tell_nowait(call(2))
        assert await actor.write_and_confirm(call(3)) is None
        assert actor.mailbox_depth() == 0 and not actor.status().enabled
    assert not path.exists()


# -- backpressure ---------------------------------------------------------------------------------


async def test_a_slow_sink_slows_the_tellers_and_loses_nothing(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "audit.jsonl"
    sink = MemorySink(delay=1.0)
    actor = actor_for(path, sinks=[sink], mailbox_size=2)
    calls = 40
    async with running(actor):
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for client in range(4):
                for i in range(calls // 4):
                    nursery.start_soon(actor.tell, call(i, client=f"c{client}"))
        elapsed = trio.current_time() - start
        # 40 records, a 1 s sink per batch of two, and at most two more staged for the next write
        assert elapsed >= 10
        await trio.sleep(30)
    written = [r for r in records(path) if r.event == "request"]
    assert len(written) == calls
    assert len([r for r in sink.got if r.event == "request"]) == calls
    assert verify_log(str(path)).ok


# -- payloads ---------------------------------------------------------------------------------


async def test_payloads_are_left_out_unless_asked_for(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "audit.jsonl"
    async with running(actor_for(path)) as actor:
        await actor.write_and_confirm(call(1, payload={"arguments": {"path": "/etc/passwd"}}))
    assert "payload" not in path.read_text() and "passwd" not in path.read_text()


async def test_the_redact_hook_runs_on_payloads_before_hashing(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "audit.jsonl"
    seen: list[Any] = []

    def redact(payload: Any) -> Any:
        seen.append(payload)
        return {k: ("[REDACTED]" if k == "token" else v) for k, v in payload.items()}

    actor = AuditActor(
        audit_config(path, include_payloads=True), redact=redact, sinks=[], threaded=False, wall_clock=Clock()
    )
    async with running(actor):
        record = await actor.write_and_confirm(call(1, payload={"token": "sk-test-FAKE", "path": "/tmp/x"}))
        await actor.tell(call(2))  # no payload: the hook is not called
    assert record is not None and record.payload == {"path": "/tmp/x", "token": "[REDACTED]"}
    assert seen == [{"token": "sk-test-FAKE", "path": "/tmp/x"}]
    assert "sk-test-FAKE" not in path.read_text()
    assert verify_log(str(path)).ok


async def test_payloads_are_written_as_given_without_a_hook(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "audit.jsonl"
    async with running(actor_for(path, include_payloads=True)) as actor:
        record = await actor.write_and_confirm(call(1, payload={"b": 1, "a": [1, 2]}))
    assert record is not None and record.payload == {"a": [1, 2], "b": 1}
    assert '"payload":{"a":[1,2],"b":1}' in path.read_text()


async def test_a_failing_redact_hook_withholds_the_payload_and_does_not_leak_it(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.jsonl"

    def redact(payload: Any) -> Any:
        raise ValueError(f"cannot handle {payload}")

    actor = AuditActor(
        audit_config(path, include_payloads=True), redact=redact, sinks=[], threaded=False, wall_clock=Clock()
    )
    async with running(actor):
        first = await actor.write_and_confirm(call(1, payload={"secret": "sk-test-FAKE"}))
        second = await actor.write_and_confirm(call(2, payload={"secret": "sk-test-FAKE"}, reason="policy"))
    assert first is not None and first.payload is None
    assert first.reason == "payload withheld: redaction failed (ValueError)"
    assert second is not None and second.reason == "policy; payload withheld: redaction failed (ValueError)"
    assert "sk-test-FAKE" not in path.read_text() and "sk-test-FAKE" not in caplog.text


# -- sinks ------------------------------------------------------------------------------------


async def test_sinks_get_every_record_and_a_failing_sink_never_breaks_the_chain(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.jsonl"
    good, bad = MemorySink(), MemorySink()
    bad.fail = True
    caplog.set_level(logging.WARNING, "watchgate.audit")
    async with running(actor_for(path, sinks=[bad, good])) as actor:
        for i in range(3):
            await actor.write_and_confirm(call(i))
        await trio.testing.wait_all_tasks_blocked()  # sinks are fed by the actor, after the write
        assert actor.status().sink_errors >= 2  # a failed emit each: the header, then the records
        bad.fail = False
        await actor.write_and_confirm(call(3))
        await trio.testing.wait_all_tasks_blocked()
    assert good.got == records(path)
    assert [r.request_id for r in bad.got] == [3]
    assert caplog.text.count("sink memory failed: sink is down") == 1
    assert "sink memory works again" in caplog.text
    assert bad.closed and good.closed


async def test_sinks_come_from_the_config(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    from watchgate.config import AuditSinkConfig

    path = tmp_path / "audit.jsonl"
    config = audit_config(path, sinks=(AuditSinkConfig(type="csv", path=str(tmp_path / "a.csv")),))
    actor = AuditActor(config, threaded=False)
    async with running(actor):
        await actor.write_and_confirm(
            AuditEntry(event="notification", server="fs", method="notifications/message")
        )
    assert (tmp_path / "a.csv").read_text().count("\n") == 3  # header row, genesis, notification


# -- record_nowait (synchronous callers) -------------------------------------------------------


async def test_record_nowait_never_blocks_and_never_drops(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "audit.jsonl"
    actor = actor_for(path, mailbox_size=1)
    actor.tell_nowait(call(1))  # the mailbox is full and nobody is reading it yet
    actor.record_nowait(lifecycle_entry("config_reloaded", reason="added fs"))
    async with running(actor):
        actor.record_nowait(lifecycle_entry("client_attached", client="c9"))
        await trio.sleep(5)
    methods = [r.method or "" for r in records(path)]
    assert methods[0] == "genesis"  # side entries join the next batch, ahead of the mailbox's
    assert sorted(methods[1:]) == ["client_attached", "config_reloaded", "tools/call"]


async def test_record_nowait_follows_on_failure(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    (tmp_path / "logs").write_text("not a folder")
    blocked = actor_for(tmp_path / "logs" / "a.jsonl")
    lossy = actor_for(tmp_path / "logs" / "b.jsonl", on_failure="continue")
    disabled = actor_for(tmp_path / "c.jsonl", enabled=False)
    async with running(blocked), running(lossy), running(disabled):
        for actor in (blocked, lossy, disabled):
            actor.record_nowait(lifecycle_entry("server_started", server="fs"))  # never raises
        await trio.sleep(0.1)
        assert (blocked.status().pending, lossy.records_lost) == (1, 1)
    assert not (tmp_path / "c.jsonl").exists()


def test_supervisor_events_become_lifecycle_entries() -> None:
    crashed = SupervisorEvent("upstreams", "fs", "exited", reason="exit code 1: boom")
    assert supervisor_entry(crashed, subject="server") == AuditEntry(
        event="lifecycle", method="server_exited", server="fs", reason="exit code 1: boom"
    )
    backoff = SupervisorEvent("upstreams", "fs", "backoff", delay=0.5)
    assert supervisor_entry(backoff, subject="server").reason == "restart in 0.50 s"
    left = SupervisorEvent("clients", "client-3", "stopped")
    assert supervisor_entry(left, subject="client") == AuditEntry(
        event="lifecycle", method="client_stopped", client="client-3"
    )
    router = SupervisorEvent("root", "router", "exited", reason="RuntimeError('x')")
    assert supervisor_entry(router, subject="actor") == AuditEntry(
        event="lifecycle", method="actor_exited", reason="root/router; RuntimeError('x')"
    )
