"""The audit log as the last hook on the message path: what it records and when."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.audit.helpers import Clock, audit_config
from watchgate.audit import AuditActor, verify_log
from watchgate.audit.hooks import AuditHooks
from watchgate.errors import AuditUnavailable
from watchgate.hooks import CallContext, Decision
from watchgate.protocol import jsonrpc
from watchgate.protocol.jsonrpc import error_response


def _context(**fields: object) -> CallContext:
    base: dict[str, object] = dict(
        server="fs",
        upstream="fs",
        client_id=7,
        method="tools/call",
        name="read_file",
        public_name="fs__read_file",
        request_id="r-1",
        started=0.0,
        request_bytes=42,
    )
    base.update(fields)
    return CallContext(**base)  # type: ignore[arg-type]


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_request_decisions_and_response_are_recorded_before_the_answer_is_released(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditActor(audit_config(path, include_payloads=True), threaded=False, wall_clock=Clock())
    hooks = AuditHooks(audit, include_payloads=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(audit.run)
        ctx = _context()
        request = jsonrpc.request("r-1", "tools/call", {"name": "read_file", "arguments": {"path": "/a"}})
        assert await hooks.on_request(ctx, request) is request
        ctx.decisions.append(
            Decision(plugin="secrets", stage="response", action="modify", reason="redacted 1 aws_key")
        )
        await trio.sleep(0.25)
        response = jsonrpc.result_response(
            "r-1", {"content": [{"type": "text", "text": "[REDACTED:aws_key]"}]}
        )
        assert await hooks.on_response(ctx, response) is response
        # released only now: the response record is already on disk
        records = _records(path)
        assert [r["event"] for r in records][-3:] == ["request", "decision", "response"]
        request_record, decision, answer = records[-3:]
        assert request_record["payload"] == {"name": "read_file", "arguments": {"path": "/a"}}
        assert decision["plugin"] == "secrets" and decision["decision"] == "modify"
        assert answer["decision"] == "allow" and answer["duration_ms"] == 250.0
        assert answer["tool"] == "read_file" and answer["public_name"] == "fs__read_file"
        assert "[REDACTED:aws_key]" in json.dumps(answer["payload"])
        assert await hooks.on_notification(
            "fs", "fs", jsonrpc.notification("notifications/message", {"level": "info"})
        )
        assert await hooks.on_list("fs", "fs", "tools", []) == []
        nursery.cancel_scope.cancel()
    assert verify_log(path).ok


async def test_denials_and_errors_are_marked(autojump_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditActor(audit_config(path), threaded=False, wall_clock=Clock())
    hooks = AuditHooks(audit, include_payloads=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(audit.run)
        ctx = _context(
            decisions=[Decision(plugin="path_guard", stage="request", action="deny", reason="outside")]
        )
        denied = error_response("r-1", jsonrpc.JsonRpcError(-32010, "blocked by path_guard: outside"))
        await hooks.on_response(ctx, denied)
        await hooks.on_response(_context(), error_response("r-2", jsonrpc.JsonRpcError(-32003, "down")))
        nursery.cancel_scope.cancel()
    *_, deny, failed = _records(path)
    assert (deny["decision"], deny["plugin"], deny["error_code"], deny.get("payload")) == (
        "deny",
        "path_guard",
        -32010,
        None,
    )
    assert (failed["decision"], failed["error_code"]) == ("error", -32003)


async def test_an_unwritable_log_refuses_requests(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")  # unwritable even for root: its "directory" is a file
    audit = AuditActor(audit_config(not_a_directory / "audit.jsonl"), threaded=False, wall_clock=Clock())
    hooks = AuditHooks(audit, include_payloads=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(audit.run)
        await trio.sleep(0.1)
        with pytest.raises(AuditUnavailable):
            await hooks.on_request(_context(), jsonrpc.request(1, "tools/call", {"name": "x"}))
        nursery.cancel_scope.cancel()
