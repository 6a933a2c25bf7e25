"""The benchmark driver and report in-process: the paths a healthy smoke run never takes.

A measurement that silently counted error responses, hung on a server's own request, or left a
child behind would be worse than none, so those paths are pinned down here with tiny scripted
servers. No timing is asserted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from watchgate.bench import arms, report
from watchgate.bench.driver import BenchError, call_template, reap, rss_kib, run_window, spawn
from watchgate.bench.measure import percentile

# Before answering a request, asks the client for ping and roots/list and sends a notification;
# answers tools/call "fail" with an error and "bye" by exiting; otherwise returns what the client
# answered to its own requests, so the test sees the driver replied.
CHATTY = r"""
import json, sys
def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n"); sys.stdout.flush()
def read():
    line = sys.stdin.readline()
    return json.loads(line) if line else None
while (msg := read()) is not None:
    if "id" not in msg:
        continue
    name = (msg.get("params") or {}).get("name")
    if name == "bye":
        sys.stderr.write("leaving now\n"); sys.exit(4)
    if name == "fail":
        send({"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32000, "message": "nope"}}); continue
    send({"jsonrpc": "2.0", "method": "notifications/message", "params": {}})
    send({"jsonrpc": "2.0", "id": "s1", "method": "ping"})
    send({"jsonrpc": "2.0", "id": "s2", "method": "roots/list"})
    answers = [read(), read()]
    send({"jsonrpc": "2.0", "id": msg["id"], "result": {"answers": answers}})
"""


@pytest.fixture
def chatty(tmp_path: Path) -> list[str]:
    script = tmp_path / "chatty.py"
    script.write_text(CHATTY)
    return [sys.executable, str(script)]


async def test_server_requests_are_answered_and_notifications_skipped(
    chatty: list[str], tmp_path: Path
) -> None:
    async with spawn("chatty", chatty, tmp_path) as conn:
        result = await conn.request("tools/call", {"name": "echo"})
        assert b'"result": {}' in bytes(result)
        assert b"does not implement roots/list" in bytes(result)
        elapsed, latencies = await run_window(conn, call_template("echo", {}), 3, 1)
        assert len(latencies) == 3
        assert elapsed > 0


async def test_error_responses_fail_the_measurement(chatty: list[str], tmp_path: Path) -> None:
    async with spawn("chatty", chatty, tmp_path) as conn:
        with pytest.raises(BenchError, match="nope"):
            await conn.request("tools/call", {"name": "fail"})
        with pytest.raises(BenchError, match="tools/call failed"):
            await run_window(conn, call_template("fail", {}), 2, 1)


async def test_a_dying_server_is_reported_with_its_stderr(chatty: list[str], tmp_path: Path) -> None:
    async with spawn("chatty", chatty, tmp_path) as conn:
        with pytest.raises(BenchError, match=r"stdout closed \(exit 4; stderr: leaving now\)"):
            await conn.request("tools/call", {"name": "bye"})
        with pytest.raises(BenchError, match="stdin closed"):
            for _ in range(100):  # the pipe may take a write or two to report the reader gone
                await conn.notify("notifications/initialized")
                await trio.sleep(0.01)


async def test_spawn_errors_and_oversized_windows(chatty: list[str], tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="cannot start"):
        async with spawn("ghost", [str(tmp_path / "missing")], tmp_path):
            pass  # pragma: no cover
    async with spawn("chatty", chatty, tmp_path) as conn:
        with pytest.raises(BenchError, match="overfill the pipe"):
            await run_window(conn, call_template("echo", {"text": "x" * 4096}), 10, 32)
    assert rss_kib(os.getpid()) > 0
    with pytest.raises(OSError):
        rss_kib(2**22 + 7)


async def test_reap_escalates_to_sigkill(tmp_path: Path) -> None:
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); time.sleep(60)"
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", stubborn],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdout is not None
    await process.stdout.receive_some(10)  # the handler is installed
    await reap(process, grace=0.2)
    assert process.returncode == -signal.SIGKILL


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile([7], 0.99) == 7
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 0.5)


def test_report_shows_failures_skips_and_unmeasured_targets() -> None:
    results = {
        "latency": [
            {"server": "echo", "error": "boom"},
            {"server": "everything", "skipped": "not installed"},
        ],
        "throughput": [{"server": "everything", "skipped": "not installed"}],
        "large": {"error": "too big"},
        "fanout": {"error": "no fan"},
        "peer": {"status": "skipped", "note": "fastmcp is not importable"},
    }
    text = report.table(results)
    for fragment in (
        "ERROR: boom",
        "not installed",
        "ERROR: too big",
        "ERROR: no fan",
        "fastmcp is not importable",
    ):
        assert fragment in text
    assert "not built yet" in text
    checks = report.targets(results)
    assert {check["met"] for check in checks} == {None}
    assert "not measured" in report.targets_table(checks)


def test_arms_find_a_proxied_tool_and_carry_env_and_cwd() -> None:
    assert arms.resolve_tool(["echo", "big"], "echo") == "echo"
    assert arms.resolve_tool(["upstream_echo", "upstream_big"], "echo") == "upstream_echo"
    with pytest.raises(BenchError, match="tool 'echo' not found among 2 tools"):
        arms.resolve_tool(["a_echo", "b__echo"], "echo")
    entry = arms.upstream_entry("s", ["srv"], env={"K": "v"}, cwd="/tmp")
    assert entry == {"name": "s", "command": ["srv"], "env": {"K": "v"}, "cwd": "/tmp"}


def test_the_daemon_path_is_judged_against_run_in_the_same_run() -> None:
    results = {
        "latency": [
            {
                "server": "echo",
                "direct": {"p50_us": 90},
                "gateway": {"p50_us": 400},
                "added_p50_us": 310,
                "ratio_p50": 4.4,
                "daemon": {"p50_us": 376},
            }
        ],
        "throughput": [
            {"server": "echo", "concurrency": 32, "direct": 1e5, "gateway": 12_000, "daemon": 9_000}
        ],
    }
    checks = {c["name"]: c for c in report.targets(results)}
    assert checks["daemon p50 / run p50, echo"] == {
        "name": "daemon p50 / run p50, echo",
        "target": "<= 1.15x",
        "value": 0.94,
        "unit": "x",
        "met": True,
    }
    assert checks["daemon calls/s / run, echo, c=32"]["value"] == 0.75
    assert checks["daemon calls/s / run, echo, c=32"]["met"] is False


def test_the_floor_and_the_audit_log_are_judged_as_ratios_of_one_run() -> None:
    results = {
        "floor": {"run_vs_bare_trio_p50": 1.1, "audit_on_vs_off_p50": 1.3, "audit_on_vs_off_calls": 0.81},
        "throughput": [
            {"server": "echo", "concurrency": 32, "direct": 1e5, "gateway": 20_000, "gatekit": 1_500}
        ],
    }
    met = {c["name"]: c["met"] for c in report.targets(results)}
    assert met["run p50 / bare trio pass-through p50"] is True
    assert met["audit on / off p50, echo"] is False
    assert met["audit on / off calls/s, echo, c=32"] is True
    assert met["run calls/s / Gatekit, echo, c=32"] is True  # 13.3x
    text = report.table({**results, "floor": {"status": "error", "error": "floor broke"}})
    assert "floor broke" in text and "gatekit peer" in text
