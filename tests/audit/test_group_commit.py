"""Group commit: the records of a burst go to the log in one write, the answers after it.

What a user sees: every answer still has its record in the log before the client holds it, a
burst of answers costs one ``write`` instead of one per record, and when that one write fails
exactly the answers it held are refused with -32011.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing
import yaml

import watchgate.audit.chain as chain_module
from tests.audit.helpers import Clock, audit_config, call, records, running
from tests.gateway.fakes import Client, FakeServer, echo, running_gateway
from watchgate.answer_group import GroupCommit
from watchgate.audit import AuditActor, resolved_audit_config, verify_log
from watchgate.audit.actor import FLUSH_AFTER, HOLD_REQUEST_FOR
from watchgate.config import GatewayConfig, parse_config
from watchgate.errors import JsonRpcError


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of records in every write to an audit log; ``fail`` makes the next ones fail."""
    counts: list[int] = []
    real = chain_module._write_all

    def counting(fd: int, data: bytes) -> None:
        if getattr(counting, "fail", False):
            raise OSError(errno.ENOSPC, "No space left on device")
        counts.append(data.count(b"\n"))
        real(fd, data)

    monkeypatch.setattr(chain_module, "_write_all", counting)
    return counts


def _actor(path: Path) -> AuditActor:
    return AuditActor(audit_config(path), sinks=[], threaded=False, wall_clock=Clock())


async def test_a_record_nobody_waits_for_joins_the_next_write(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, writes: list[int]
) -> None:
    path = tmp_path / "audit.jsonl"
    async with running(_actor(path)) as actor:
        await actor.tell(call(1, event="notification"))
        await actor.tell(call(2, event="decision", decision="allow"))
        assert len(records(path)) == 1  # only the header: both are staged
        confirmed = await actor.write_and_confirm(call(3, event="response"))
        assert confirmed is not None and confirmed.seq == 3
        assert [r.request_id for r in records(path)] == [None, 1, 2, 3]
        assert writes[-1] == 3  # the two staged records and the confirmed one: one write


@pytest.mark.parametrize(
    ("event", "wait"),
    [("notification", FLUSH_AFTER), ("request", HOLD_REQUEST_FOR)],
    ids=["a staged record within flush_after", "a request nobody answers after hold_request_for"],
)
async def test_a_record_nobody_waits_for_is_written_on_its_own_in_its_time(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, writes: list[int], event: str, wait: float
) -> None:
    path = tmp_path / "audit.jsonl"
    async with running(_actor(path)) as actor:
        await trio.sleep(1.5)  # past the header's fsync (at 1 s), which would write it too
        await actor.tell(call(7, event=event))
        await trio.sleep(wait * 0.99)
        assert len(records(path)) == 1 and actor.status().pending == 1  # staged or held, still waiting
        await trio.sleep(wait * 0.02)
        assert [(r.event, r.request_id) for r in records(path)] == [("lifecycle", None), (event, 7)]
        assert actor.status().pending == 0
    assert verify_log(str(path)).ok


async def test_answers_wait_for_their_records_and_keep_their_order(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, writes: list[int]
) -> None:
    path = tmp_path / "audit.jsonl"
    released: list[tuple[str, Any]] = []

    def release_as(name: str) -> Any:
        async def release(error: JsonRpcError | None) -> None:
            released.append((name, error))
            assert len(records(path)) == 4  # every record of the burst is in the file first

        return release

    async with running(_actor(path)) as actor:
        async with GroupCommit() as group:
            assert not group.hold(release_as("nothing staged yet"))  # goes at once
            for name in ("a", "b", "c"):
                assert await actor.write_and_confirm(call(name, event="response")) is None
                assert group.hold(release_as(name))
            assert released == [] and len(records(path)) == 1
        assert released == [("a", None), ("b", None), ("c", None)]
        assert writes[-1] == 3


async def test_a_failed_group_write_refuses_exactly_the_answers_it_held(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, writes: list[int]
) -> None:
    path = tmp_path / "audit.jsonl"
    errors: list[int | None] = []

    async def release(error: JsonRpcError | None) -> None:
        errors.append(None if error is None else error.code)

    async with running(_actor(path)) as actor:
        assert await actor.write_and_confirm(call("before", event="response")) is not None
        async with GroupCommit() as group:
            for name in ("x", "y"):
                await actor.write_and_confirm(call(name, event="response"))
                group.hold(release)
            writes_fail(True)
        assert errors == [-32011, -32011]
        writes_fail(False)
        await trio.sleep(2)  # the retry reopens the log and records the outage
        assert actor.healthy
    kept = [r.request_id for r in records(path) if r.event == "response"]
    assert kept == ["before"]  # a refused answer was never released: nothing to record about it
    assert any(r.method == "recovered" for r in records(path))
    assert verify_log(str(path)).ok


def writes_fail(on: bool) -> None:
    chain_module._write_all.fail = on  # type: ignore[attr-defined]


async def test_the_answers_held_are_released_when_the_burst_is_cancelled(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, writes: list[int]
) -> None:
    released: list[str] = []

    async def release(error: JsonRpcError | None) -> None:
        await trio.lowlevel.checkpoint()  # shielded: even a checkpoint does not lose it
        released.append("sent")

    async with running(_actor(tmp_path / "audit.jsonl")) as actor:
        with trio.CancelScope() as scope:
            async with GroupCommit() as group:
                await actor.write_and_confirm(call(1, event="response"))
                group.hold(release)
                scope.cancel()
                await trio.sleep(1)
        assert released == ["sent"]


async def test_answers_that_go_at_once_and_one_that_waits_are_all_released_from_a_cancelled_burst(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, writes: list[int]
) -> None:
    """Releases that say they go at once are not shielded (no checkpoint, nothing to cut short);
    from the first that must wait, the rest are."""
    released: list[str] = []

    def release_as(name: str, *, waits: bool) -> Any:
        async def release(error: JsonRpcError | None) -> None:
            if waits:
                await trio.lowlevel.checkpoint()  # cut short here if it were not shielded
            released.append(name)

        return release

    async with running(_actor(tmp_path / "audit.jsonl")) as actor:
        with trio.CancelScope() as scope:
            async with GroupCommit() as group:
                for name, waits in (("a", False), ("b", True), ("c", False)):
                    await actor.write_and_confirm(call(name, event="response"))
                    group.hold(release_as(name, waits=waits), at_once=lambda waits=waits: not waits)
                scope.cancel()
                await trio.sleep(1)
        assert released == ["a", "b", "c"]


# -- in a gateway ---------------------------------------------------------------------------------


def _config(audit_path: Path) -> GatewayConfig:
    document = {
        "proxy": {"upstreams": [{"name": "slow", "command": ["fake"]}]},
        "audit": {"path": str(audit_path)},
    }
    return parse_config(yaml.safe_dump(document))


async def _burst(server: FakeServer, count: int) -> None:
    """Answer every call in flight at once: one chunk on the server's stdout."""
    calls = server.session.requests("tools/call")
    answers = [
        {"jsonrpc": "2.0", "id": c["id"], "result": {"content": [{"type": "text", "text": str(n)}]}}
        for n, c in enumerate(calls[-count:])
    ]
    await server.session.send_raw(b"".join(json.dumps(a).encode() + b"\n" for a in answers))


async def _in_flight(client: Client, server: FakeServer, count: int) -> list[Any]:
    """``count`` calls sent and waiting at the server; their request records already written."""
    ids = [
        await client.start("tools/call", {"name": "echo", "arguments": {"text": "x"}}) for _ in range(count)
    ]
    await client.wait_for(lambda: len(server.session.requests("tools/call")) == count)
    await trio.sleep(1)  # the request records are written meanwhile (FLUSH_AFTER)
    return ids


def _slow_gateway(log: Path) -> tuple[GatewayConfig, FakeServer, AuditActor]:
    config = _config(log)
    server = FakeServer("slow", tools={"echo": echo}, silent_methods=("tools/call",))
    return config, server, AuditActor(resolved_audit_config(config), threaded=False, wall_clock=Clock())


async def test_a_burst_of_answers_through_the_gateway_is_one_write(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, writes: list[int]
) -> None:
    log = tmp_path / "audit.jsonl"
    config, server, audit = _slow_gateway(log)
    async with running_gateway(config, server, audit=audit) as (_, client):
        await client.initialize()
        ids = await _in_flight(client, server, 10)
        before = len(writes)
        await _burst(server, 10)
        answers = [await client.response(i) for i in ids]
        assert sorted(a["result"]["content"][0]["text"] for a in answers) == sorted(str(n) for n in range(10))
        assert writes[before:] == [10]  # ten response records, one write, before any answer left
    assert verify_log(str(log)).ok


async def test_a_lone_answer_is_written_before_its_client_gets_it_or_refused_with_32011(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, writes: list[int]
) -> None:
    """A burst of one answer (every answer, one call at a time) is written in place, without
    a group to hold it: the same promise, one write and no hold and release."""
    log = tmp_path / "audit.jsonl"
    config, server, audit = _slow_gateway(log)
    async with running_gateway(config, server, audit=audit) as (_, client):
        await client.initialize()
        [first] = await _in_flight(client, server, 1)
        before = len(writes)
        await _burst(server, 1)
        assert (await client.response(first))["result"]["content"][0]["text"] == "0"
        assert writes[before:] == [1]
        second = await client.start("tools/call", {"name": "echo", "arguments": {"text": "x"}})
        await client.wait_for(lambda: len(server.session.requests("tools/call")) == 2)
        await trio.sleep(1)  # its request record is written meanwhile (nobody answered it)
        writes_fail(True)
        await _burst(server, 1)
        assert (await client.response(second))["error"]["code"] == -32011
        writes_fail(False)
    assert verify_log(str(log)).ok


async def test_a_failed_burst_write_answers_those_calls_with_32011_and_the_gateway_goes_on(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, writes: list[int]
) -> None:
    log = tmp_path / "audit.jsonl"
    config, server, audit = _slow_gateway(log)
    async with running_gateway(config, server, audit=audit) as (gateway, client):
        await client.initialize()
        ids = await _in_flight(client, server, 5)
        writes_fail(True)
        await _burst(server, 5)
        refused = [await client.response(i) for i in ids]
        assert {r["error"]["code"] for r in refused} == {-32011}
        assert all(str(log) in r["error"]["message"] for r in refused)
        writes_fail(False)
        await client.wait_for(lambda: gateway.audit is not None and gateway.audit.status().healthy)
        server.silent_methods.clear()
        answer = await client.result("tools/call", {"name": "echo", "arguments": {"text": "back"}})
        assert answer["content"][0]["text"] == "back"
    assert verify_log(str(log)).ok
    assert os.path.getsize(log) > 0


# -- the call record (ADR-033) ----------------------------------------------------------------


async def test_a_request_answered_before_its_record_is_written_is_one_call_record(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, writes: list[int]
) -> None:
    path = tmp_path / "audit.jsonl"
    config = audit_config(path, include_payloads=True)
    async with running(AuditActor(config, threaded=False, wall_clock=Clock())) as actor:
        await actor.tell(request := call(1, request_bytes=12, payload={"name": "read_file"}))
        answer = call(1, event="response", decision="allow", duration_ms=0.5, payload={"text": "hi"})
        async with GroupCommit() as group:
            assert await actor.write_and_confirm(answer, opened_by=request) is None
            group.hold(_released)
    [record] = records(path)[1:]
    assert (record.event, record.request_id, record.decision, record.request_bytes) == (
        "call",
        1,
        "allow",
        12,
    )
    assert (record.request_payload, record.payload) == ({"name": "read_file"}, {"text": "hi"})
    assert writes[-1] == 1
    assert verify_log(str(path)).ok


async def test_a_call_still_in_flight_waits_for_its_answer_then_for_hold_request_for_at_most(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Another call's answer is written at once; the request still in flight is not written
    with it but waits (at most `HOLD_REQUEST_FOR`) for its own answer, to be one record with it."""
    path = tmp_path / "audit.jsonl"
    async with running(_actor(path)) as actor:
        await trio.sleep(1.5)  # past the header's fsync (at 1 s), which would write it too
        await actor.tell(slow := call(1))
        await actor.tell(quick := call(2))
        assert await actor.write_and_confirm(call(2, event="response"), opened_by=quick) is not None
        assert [(r.event, r.request_id) for r in records(path)[1:]] == [("call", 2)]
        assert actor.status().pending == 1  # the slow call's request, held
        await trio.sleep(HOLD_REQUEST_FOR * 0.9)  # the writer woke meanwhile (the fsync's bookkeeping)
        assert [(r.event, r.request_id) for r in records(path)[1:]] == [("call", 2)]
        await trio.sleep(HOLD_REQUEST_FOR * 0.2)
        assert [(r.event, r.request_id) for r in records(path)[1:]] == [("call", 2), ("request", 1)]
        assert await actor.write_and_confirm(call(1, event="response"), opened_by=slow) is not None
    assert [(r.event, r.request_id) for r in records(path)[1:]] == [
        ("call", 2),
        ("request", 1),
        ("response", 1),
    ]
    assert verify_log(str(path)).ok


async def test_each_call_in_flight_waits_from_its_own_staging_not_the_oldest(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A request held back keeps the deadline of its own staging: a later one is not written
    with an earlier one's deadline (it would miss its answer), nor does a later write extend
    the earlier one's wait."""
    path = tmp_path / "audit.jsonl"
    async with running(_actor(path)) as actor:
        await trio.sleep(1.5)  # past the header's fsync
        await actor.tell(first := call(1))
        await actor.tell(quick := call(2))
        await actor.write_and_confirm(call(2, event="response"), opened_by=quick)
        await trio.sleep(HOLD_REQUEST_FOR * 0.6)
        await actor.tell(second := call(3))
        await actor.tell(other := call(4))
        await actor.write_and_confirm(call(4, event="response"), opened_by=other)
        await trio.sleep(HOLD_REQUEST_FOR * 0.6)  # the first's deadline has passed, not the second's
        assert [(r.event, r.request_id) for r in records(path)[1:]] == [
            ("call", 2),
            ("call", 4),
            ("request", 1),
        ]
        await actor.write_and_confirm(call(3, event="response"), opened_by=second)
        await actor.write_and_confirm(call(1, event="response"), opened_by=first)
    assert [(r.event, r.request_id) for r in records(path)[1:]] == [
        ("call", 2),
        ("call", 4),
        ("request", 1),
        ("call", 3),
        ("response", 1),
    ]
    assert verify_log(str(path)).ok


async def test_a_call_answered_after_flush_after_but_within_the_hold_is_one_record(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, writes: list[int]
) -> None:
    """A call slower than a group commit's wait (a gateway under load: ~16 ms a call at 32 HTTP
    connections) is still one record, not a request and a response."""
    path = tmp_path / "audit.jsonl"
    async with running(_actor(path)) as actor:
        await trio.sleep(1.5)  # past the header's fsync
        await actor.tell(request := call(1))
        await trio.sleep(FLUSH_AFTER * 4)
        async with GroupCommit() as group:
            assert await actor.write_and_confirm(call(1, event="response"), opened_by=request) is None
            group.hold(_released)
        assert [(r.event, r.request_id) for r in records(path)[1:]] == [("call", 1)]
        assert writes[-1] == 1 and actor.status().pending == 0
    assert verify_log(str(path)).ok


async def test_past_half_a_batch_held_a_request_is_written_with_the_next_write(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, writes: list[int]
) -> None:
    """A flood of calls nobody answers soon: half a batch of requests is held for answers, the
    rest go out as before (within `FLUSH_AFTER`), so the held ones stay few."""
    path = tmp_path / "audit.jsonl"
    actor = AuditActor(audit_config(path, mailbox_size=8), sinks=[], threaded=False, wall_clock=Clock())
    async with running(actor):
        await trio.sleep(1.5)  # past the header's fsync
        for n in range(6):
            await actor.tell(call(n))
        await trio.sleep(FLUSH_AFTER * 1.1)
        assert [(r.event, r.request_id) for r in records(path)[1:]] == [("request", 4), ("request", 5)]
        assert actor.status().pending == 4  # held: 8 // 2
        await trio.sleep(HOLD_REQUEST_FOR)
        assert [r.request_id for r in records(path)[1:]] == [4, 5, 0, 1, 2, 3]
    assert verify_log(str(path)).ok


async def _released(error: JsonRpcError | None) -> None:
    assert error is None
