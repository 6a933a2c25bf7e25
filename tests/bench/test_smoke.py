"""The benchmark harness runs end to end with tiny counts, so it never rots.

Subprocesses, like a person runs them; no timing is asserted anywhere (the numbers belong in
docs/performance.md, not in a pass/fail). The FastMCP peer is optional: its column may be empty.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ECHO = [sys.executable, "-S", str(REPO / "tests/servers/echo_server.py")]
WATCHGATE = REPO / ".venv" / "bin" / "watchgate"

pytestmark = pytest.mark.integration


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "bench.yaml"
    upstreams = [{"name": "echo", "command": ECHO}, {"name": "other", "command": [*ECHO, "--tools", "3"]}]
    path.write_text(yaml.safe_dump({"proxy": {"upstreams": upstreams}, "logging": {"level": "warning"}}))
    return path


def test_suite_quick_prints_the_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    # ~35 s on a quiet 2-core machine; it starts some twenty processes, so beside the rest of the
    # suite on a loaded CI runner it has taken over 4x that. The limit is for a hang, not a speed.
    proc = run("-m", "watchgate.bench", "--quick", "--json", str(out), timeout=420)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for label in ("latency echo p50 (us)", "throughput echo c=32", "large", "fan-out", "plugins", "daemon"):
        assert label in proc.stdout
    results = json.loads(out.read_text())
    expected = {
        "machine",
        "latency",
        "throughput",
        "large",
        "fanout",
        "peer",
        "plugins",
        "telemetry",
        "daemon",
        "targets",
        "http_listener",
        "http_gateway",
        "http_floor",
    }
    assert expected <= results.keys()
    assert results["mode"] == "quick"
    assert results["errors"] == []
    echo = next(row for row in results["latency"] if row["server"] == "echo")
    assert {"direct", "gateway", "ratio_p50", "added_p50_us"} <= echo.keys()
    assert {"p50_us", "p99_us"} <= echo["gateway"].keys()
    assert {row["concurrency"] for row in results["throughput"] if row["server"] == "echo"} == {1, 8, 32}
    assert {"direct_mb_s", "gateway_mb_s", "ratio"} <= results["large"].keys()
    assert {"startup_s", "tools_list_p50_ms", "rss_per_upstream_mib"} <= results["fanout"].keys()
    plugins = results["plugins"]
    assert plugins["status"] == "ok"
    assert plugins["plugins"] == [
        "tool_access",
        "path_guard",
        "tool_pinning",
        "secrets",
        "pii",
        "prompt_injection",
    ]
    assert {"p50_us", "p99_us"} <= plugins["with"].keys() and {"p50_us", "p99_us"} <= plugins[
        "without"
    ].keys()
    assert "added_p50_us" in plugins and "ratio" in plugins["throughput"]
    assert "plugins added p50" in proc.stdout
    telemetry = results["telemetry"]
    assert telemetry["status"] == "ok", telemetry  # spans and metrics to a local OTLP sink
    assert {"added_p50_us", "throughput"} <= telemetry.keys()
    assert "telemetry (OpenTelemetry spans + metrics)" in proc.stdout
    assert results["daemon"]["status"] in {"ok", "not built yet"}
    assert results["peer"]["status"] in {"ok", "skipped"}
    assert results["gatekit"]["status"] in {"ok", "skipped"}  # `make bench` installs it, `make test` not
    assert results["relay"]["status"] == "ok" and "rl/direct" in proc.stdout
    floor = results["floor"]
    assert floor["status"] == "ok"
    assert (
        set(floor["latency"]) == set(floor["throughput"]) == {"bare_trio", "audit_off", "audit_on", "daemon"}
    )
    for line in ("floor: bare trio pass-through", "floor: run, audit log off", "floor: run, audit log on"):
        assert line in proc.stdout
    for key, label in (
        ("http_listener", "HTTP client vs stdio client"),
        ("http_gateway", "HTTP: direct vs watchgate"),
    ):  # clients over Streamable HTTP: a JSON answer or a stream, both read
        assert results[key]["status"] == "ok", results[key]
        assert {"added_p50_us", "throughput"} <= results[key].keys()
        assert label in proc.stdout
    checks = {check["name"]: check for check in results["targets"]}
    for name in (
        "run p50 / bare trio pass-through p50",
        "audit on / off p50, echo",
        "audit on / off calls/s, echo, c=32",
    ):
        assert checks[name]["value"] is not None
    assert len(checks) == 22
    http_floor = results["http_floor"]  # wrk is make bench's (CI has none): measured or said why not
    if http_floor["status"] == "ok":
        assert {"floor_h11", "watchgate_legacy", "watchgate_modern"} <= http_floor["arms"].keys()
        assert checks["HTTP 2026-07-28 calls/s / trio + h11 floor, c=32"]["value"] is not None
        assert "HTTP floor: bare trio + h11" in proc.stdout
    else:
        assert http_floor["status"].startswith("skipped: wrk"), http_floor
    found = results["discovery"]  # search mode: the list it saves, the time, the quality, both parts
    assert found["status"] == "ok" and found["search_bytes"] < found["list_bytes"] / 10
    assert {"recall_at_3", "mrr"} <= found["held_out"].keys() and "discovery: recall@3" in proc.stdout


def test_bench_command_on_a_config(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "one.json"
    argv = ["-c", str(config), "--server", "echo", "--tool", "echo", "--args", '{"text": "hi"}', "-n", "20"]
    proc = run("-m", "watchgate.bench.cli", *argv, "--concurrency", "4", "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "latency p50 (us)" in proc.stdout
    assert "throughput c=4 (calls/s)" in proc.stdout
    results = json.loads(out.read_text())
    assert {"direct", "gateway"} <= results["latency"].keys()
    assert [row["concurrency"] for row in results["throughput"]] == [1, 4]


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--server", "nope", "--tool", "echo"], 1, "unknown server 'nope'; the config has: echo, other"),
        (["--server", "echo", "--tool", "echo", "--args", "{bad"], 2, "--args is not valid JSON"),
        (["--server", "echo", "--tool", "echo", "--args", "[1]"], 2, "--args must be a JSON object"),
        (["--server", "echo", "--tool", "echo", "-n", "0"], 2, "must be at least 1"),
        (["--server", "echo", "--tool", "missing", "-n", "1"], 1, "has no tool 'missing'; it has: echo, big"),
    ],
)
def test_bench_command_errors(config: Path, argv: list[str], code: int, message: str) -> None:
    proc = run("-m", "watchgate.bench.cli", "-c", str(config), *argv)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert message in proc.stderr


def test_bench_command_is_wired_into_watchgate() -> None:
    proc = subprocess.run([str(WATCHGATE), "bench", "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    assert "--concurrency" in proc.stdout
