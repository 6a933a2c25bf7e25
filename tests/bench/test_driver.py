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

from watchgate.bench import arms, httpload, report
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


def test_the_http_arms_are_judged_against_the_h11_floor_and_fastmcp() -> None:
    results = {
        "http_floor": {
            "status": "ok",
            "arms": {
                "floor_h11": {"p50_us": 200.0, "calls_per_s": 6000.0},
                "watchgate_legacy": {"p50_us": 450.0, "calls_per_s": 3100.0},
                "watchgate_modern": {"p50_us": 600.0, "calls_per_s": 2900.0},
            },
            "notes": ["fastmcp: not installed (the bench extra: make bench)"],
            "legacy_vs_floor_calls": 0.517,
            "legacy_vs_floor_p50": 2.25,
            "modern_vs_floor_calls": 0.483,
            "modern_vs_floor_p50": 3.0,
            "modern_vs_legacy_calls": 0.935,
        }
    }
    checks = {c["name"]: c for c in report.targets(results)}
    assert checks["HTTP 2025-11-25 calls/s / trio + h11 floor, c=32"]["met"] is True
    assert checks["HTTP 2025-11-25 p50 / trio + h11 floor p50"]["met"] is True
    assert checks["HTTP 2026-07-28 calls/s / trio + h11 floor, c=32"]["met"] is False
    assert checks["HTTP 2026-07-28 p50 / trio + h11 floor p50"]["met"] is False
    assert checks["HTTP 2025-11-25 calls/s / FastMCP (session), c=32"]["met"] is None  # not measured
    assert checks["HTTP 2026-07-28 calls/s / 2025-11-25, c=32"]["met"] is False
    text = report.table(results)
    assert "HTTP run --http, 2026-07-28" in text and "(0.48x of the floor)" in text
    assert "fastmcp: not installed" in text


def test_wrk_reports_are_read_and_failures_refused() -> None:
    report_text = """Running 3s test @ http://127.0.0.1:1/mcp
  Latency Distribution
     50%  257.00us
     75%    1.20ms
  11628 requests in 3.00s, 3.14MB read
Requests/sec:   3876.22
"""
    assert httpload.parse_wrk(report_text) == (3876.22, 257.0)
    assert httpload.parse_wrk(report_text.replace("257.00us", "1.47ms"))[1] == 1470.0
    with pytest.raises(BenchError, match="Non-2xx"):
        httpload.parse_wrk(report_text + "  Non-2xx or 3xx responses: 12\n")
    with pytest.raises(BenchError, match="Socket errors"):
        httpload.parse_wrk(report_text + "  Socket errors: connect 0, read 3, write 0, timeout 0\n")
    assert httpload.parse_wrk(report_text + "  Socket errors: connect 0, read 0, write 0, timeout 0\n")[0] > 0
    with pytest.raises(BenchError, match="no rate"):
        httpload.parse_wrk("wrk: cannot connect")


def test_the_wrk_script_sends_a_unique_id_and_the_arms_headers() -> None:
    arm = httpload.WrkArm("modern", "http://x/mcp", {"mcp-name": "ec'ho"}, modern=True)
    script = httpload.wrk_script(arm)
    assert "wrk.headers['mcp-name'] = 'ec\\'ho'" in script
    assert "(tid or 0) * 100000000 + n" in script and "io.modelcontextprotocol/protocolVersion" in script
