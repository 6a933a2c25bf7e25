"""Crash safety: ``kill -9`` the daemon during a stream of calls. Every call the client got an
answer for is in the log (the record is written before the answer is released), and the chain
verifies over every complete line."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from tests.integration.conftest import CRASHY, WATCHGATE, upstream
from tests.integration.test_daemon import running_daemon
from watchgate.audit import verify_log
from watchgate.wire.framing import LineReader

pytestmark = pytest.mark.integration


async def test_kill_9_mid_stream_loses_no_answered_call(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config(upstream("echo", CRASHY), upstream("spare", CRASHY))
    text = config.read_text() + f"audit: {{path: {tmp_path / 'audit.jsonl'}, fsync: always}}\n"
    config.write_text(text)
    answered: set[int] = set()
    with trio.fail_after(90):
        async with running_daemon(config) as daemon:
            attach = await trio.lowlevel.open_process(
                [WATCHGATE, "attach", "--no-start"],
                env=daemon.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            assert attach.stdin is not None and attach.stdout is not None
            hello = {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            }
            lines = [
                {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": hello},
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
            ]
            lines += [
                {
                    "jsonrpc": "2.0",
                    "id": n,
                    "method": "tools/call",
                    "params": {"name": "echo__echo", "arguments": {"text": str(n)}},
                }
                for n in range(1, 401)
            ]
            await attach.stdin.send_all(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
            reader = LineReader(attach.stdout)
            while len(answered) < 60:
                message = json.loads(await reader.receive_line() or b"{}")
                if message.get("id") and "result" in message:
                    answered.add(message["id"])
            daemon.process.send_signal(signal.SIGKILL)
            await daemon.process.wait()
            while (line := await reader.receive_line()) is not None:  # what was already on its way
                message = json.loads(line)
                if message.get("id") and "result" in message:
                    answered.add(message["id"])
            attach.kill()
            await attach.wait()

    log = tmp_path / "audit.jsonl"
    records = []
    for raw in log.read_text().splitlines():
        try:
            records.append(json.loads(raw))
        except json.JSONDecodeError:
            assert raw is log.read_text().splitlines()[-1]  # only a torn last line may be incomplete
    logged = {r["request_id"] for r in records if r["event"] == "response"}
    assert answered <= logged, f"answered but not in the log: {sorted(answered - logged)[:10]}"
    result = verify_log(str(log))
    assert result.ok or "incomplete" in (result.problem or "") or "truncated" in (result.problem or ""), (
        result.problem
    )
