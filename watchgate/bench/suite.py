"""``python -m watchgate.bench``: the whole benchmark in one run, direct vs through Watchgate.

Per server (the in-repo echo server, server-everything): latency, throughput and (echo) a large
result, see ``scenarios.py``; then the cost of the built-in security plugins (``plugins_scenario``)
the bare trio pass-through and the audit log's cost (``floor.py``), clients over HTTP
(``httpclients.py``) and the fan-out scenario, see ``fanout.py``. A failing scenario is
recorded in the JSON and the run goes on; the exit code says whether any failed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Awaitable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import msgspec
import trio

import watchgate
from watchgate.bench import arms, discovery, report
from watchgate.bench.driver import BenchError
from watchgate.bench.fanout import fanout
from watchgate.bench.floor import floor_scenario
from watchgate.bench.httpclients import http_gateway_scenario, http_listener_scenario
from watchgate.bench.httpload import http_floor_scenario
from watchgate.bench.scenarios import (
    DEFAULT,
    QUICK,
    Counts,
    Server,
    log,
    optional_arms,
    plugins_scenario,
    server_scenario,
    telemetry_scenario,
)


def machine() -> dict[str, Any]:
    """What the numbers were measured on: they mean nothing without it."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass  # not Linux: the model stays unknown, the rest still describes the machine
    return {
        "cpus": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "watchgate": watchgate.__version__,
        "commit": _git_commit(),
        "loadavg_start": _loadavg(),
        "trio": trio.__version__,
        "msgspec": msgspec.__version__,
    }


def _loadavg() -> str | None:
    """Other work on the machine skews a benchmark: the load before and after goes on record."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(arms.REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


async def run_suite(counts: Counts, workdir: Path, quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {
        "schema": 1,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "mode": "quick" if quick else "default",
        "machine": machine(),
        "counts": asdict(counts),
        "latency": [],
        "throughput": [],
        "large": {},
        "fanout": {},
        "plugins": {},
        "telemetry": {},
        "floor": {},
        "http_listener": {},
        "http_gateway": {},
        "http_floor": {},
        "discovery": {},
        **optional_arms(),
        "errors": [],
    }
    servers = [Server("echo", arms.echo_server(), "echo", {"text": "hello"})]
    everything = arms.everything_server()
    if everything is not None:
        servers.append(Server("everything", everything, "echo", {"message": "hello"}))
    else:
        note = "server-everything not installed (make install)"
        results["latency"].append({"server": "everything", "skipped": note})
        results["throughput"].append({"server": "everything", "skipped": note})
    for server in servers:
        try:
            await server_scenario(server, counts, workdir, results)
        except BenchError as exc:
            log(f"{server.label}: FAILED: {exc}")
            results["errors"].append(f"{server.label}: {exc}")
            results["latency"].append({"server": server.label, "error": str(exc)})
    log("plugins: all six built-in security plugins vs none")
    await _scenario(results, "plugins", plugins_scenario(counts, workdir))
    log("telemetry: OpenTelemetry spans and metrics (OTLP) vs none")
    await _scenario(results, "telemetry", telemetry_scenario(counts, workdir))
    log("floor: the bare trio pass-through, run with the audit log off and on, the daemon")
    await _scenario(results, "floor", floor_scenario(counts, workdir))
    log("http listener: the echo server behind run, a client over stdio vs one over HTTP")
    await _scenario(results, "http_listener", http_listener_scenario(counts, workdir))
    log("http gateway: server-everything over HTTP, directly vs through run --http")
    await _scenario(results, "http_gateway", http_gateway_scenario(counts, workdir))
    log("http floor: wrk against trio + h11, hypercorn, uvicorn, run --http (both eras), FastMCP")
    await _scenario(
        results, "http_floor", http_floor_scenario(counts, workdir, seconds=1 if quick else 3, quick=quick)
    )
    log(f"fan-out: {counts.fanout.upstreams} upstreams x {counts.fanout.tools} tools")
    await _scenario(results, "fanout", fanout(counts.fanout, workdir))
    log("discovery: tools/list in list and search mode, find_tools time and ranking quality")
    results["discovery"] = discovery.discovery_scenario(20 if quick else 200)
    results["targets"] = report.targets(results)
    results["machine"]["loadavg_end"] = _loadavg()
    log("done")
    return results


async def _scenario(results: dict[str, Any], key: str, scenario: Awaitable[dict[str, Any]]) -> None:
    """Run one scenario into ``results[key]``; a failure is recorded there and the run goes on."""
    try:
        results[key] = await scenario
    except BenchError as exc:
        log(f"{key}: FAILED: {exc}")
        results["errors"].append(f"{key}: {exc}")
        results[key] = {"status": "error", "error": str(exc)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m watchgate.bench", description="Benchmark Watchgate against direct connections."
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny counts: checks the harness, not the numbers"
    )
    parser.add_argument("--json", metavar="PATH", help="write the results here as JSON")
    parser.add_argument(
        "--cpus",
        metavar="LIST",
        help="pin the run (and every child) to these CPUs, e.g. 0 or 0,1: steadier numbers on a VM",
    )
    args = parser.parse_args(argv)
    if args.cpus:
        try:
            os.sched_setaffinity(0, {int(cpu) for cpu in args.cpus.split(",")})
        except (ValueError, OSError) as exc:
            parser.error(f"--cpus {args.cpus}: {exc}")
    counts = QUICK if args.quick else DEFAULT
    with tempfile.TemporaryDirectory(prefix="watchgate-bench-") as tmp:
        results = trio.run(run_suite, counts, Path(tmp), args.quick)
    m = results["machine"]
    commit = m["commit"] or "not a git checkout"
    print(f"Watchgate {m['watchgate']} ({commit}), {results['mode']} run, {results['date']}")
    pinned = "" if len(m["affinity"]) == m["cpus"] else f", pinned to CPUs {m['affinity']}"
    print(f"{m['cpus']} CPUs ({m['cpu_model']}){pinned}, Python {m['python']}, load {m['loadavg_start']}\n")
    print(report.table(results))
    print()
    print(report.targets_table(results["targets"]))
    print()
    print(discovery.table(results["discovery"]))
    if args.quick:
        print("\n(--quick: tiny counts; these numbers only show the harness works)")
    if results["errors"]:
        print("\nerrors:\n  " + "\n  ".join(results["errors"]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nresults written to {args.json}")
    return 1 if results["errors"] else 0
