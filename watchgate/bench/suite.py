"""``python -m watchgate.bench``: the whole benchmark in one run, direct vs gateway (vs FastMCP).

Each scenario opens every arm at once (the server alone, ``watchgate run`` in front of it, and
FastMCP's proxy in front of it when FastMCP is importable), initializes them, warms them up and
then measures them interleaved, repeat by repeat (see ``measure.py`` for the rules). A failing
scenario is recorded in the JSON and the run goes on; the exit code says whether any failed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import trio

import watchgate
from watchgate.bench import arms, measure, report
from watchgate.bench.driver import BenchError, Connection, spawn
from watchgate.bench.fanout import FanoutCounts, fanout
from watchgate.bench.measure import Arm


@dataclass(frozen=True)
class Counts:
    """How much work each measurement does; ``calls`` are per repeat and per arm."""

    warmup: int
    latency_calls: int
    throughput_calls: int
    peer_calls: int  # FastMCP is ~50x slower per call: same calls, fewer of them, recorded as such
    repeats: int
    large_bytes: int
    large_calls: int
    fanout: FanoutCounts
    concurrency: tuple[int, ...] = field(default=(1, 8, 32))


QUICK = Counts(
    warmup=10,
    latency_calls=30,
    throughput_calls=64,
    peer_calls=10,
    repeats=3,
    large_bytes=200_000,
    large_calls=2,
    fanout=FanoutCounts(upstreams=4, tools=10, list_calls=3, repeats=1),
)
DEFAULT = Counts(
    warmup=300,
    latency_calls=3000,
    throughput_calls=5000,
    peer_calls=300,
    repeats=5,
    large_bytes=5_000_000,
    large_calls=10,
    fanout=FanoutCounts(upstreams=50, tools=100, list_calls=30, repeats=3),
)


@dataclass(frozen=True)
class Server:
    label: str
    argv: list[str]
    tool: str
    arguments: dict[str, Any]


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


async def _open(stack: AsyncExitStack, name: str, argv: Sequence[str], workdir: Path) -> Connection:
    conn = await stack.enter_async_context(spawn(name, argv, workdir))
    await conn.initialize()
    return conn


async def _open_peer(
    stack: AsyncExitStack, server: Server, workdir: Path, peer: dict[str, Any]
) -> Arm | None:
    """FastMCP's proxy in front of ``server``, or None (with the reason in ``peer``)."""
    if peer["fastmcp"] is None:
        return None
    try:
        conn = await _open(stack, f"fastmcp-{server.label}", arms.fastmcp_proxy(server.argv), workdir)
        tool = arms.resolve_tool(await conn.tool_names(), server.tool)
    except BenchError as exc:
        peer["servers"][server.label] = f"failed: {exc}"
        _log(f"fastmcp peer for {server.label} failed, its column stays empty: {exc}")
        return None
    return Arm.of(conn, tool, server.arguments)


async def _measure_peer(arm: Arm, server: Server, counts: Counts, results: dict[str, Any]) -> None:
    """The FastMCP column: fewer calls (it is much slower), and a failure never fails the run."""
    latency_row = results["latency"][-1]
    throughput_rows = results["throughput"][-len(counts.concurrency) :]
    try:
        _log(f"{server.label}: fastmcp peer")
        await measure.warm_up([arm], min(counts.warmup, counts.peer_calls))
        (p,) = await measure.latency([arm], counts.peer_calls, counts.repeats)
        latency_row["fastmcp"] = p.as_json()
        for item, k in zip(throughput_rows, counts.concurrency, strict=True):
            calls = max(k, counts.peer_calls)
            (pt,) = await measure.throughput([arm], calls, k, counts.repeats)
            item |= {"fastmcp": round(pt.calls_per_s, 1), "fastmcp_calls": calls}
    except BenchError as exc:
        results["peer"]["servers"][server.label] = f"failed: {exc}"
        _log(f"fastmcp peer for {server.label} failed, its column stays incomplete: {exc}")
        return
    results["peer"]["servers"][server.label] = "ok"


async def _server(server: Server, counts: Counts, workdir: Path, results: dict[str, Any]) -> None:
    """Latency and throughput rows for one server (and the large-message row for the echo one)."""
    config = arms.write_config(
        workdir / f"{server.label}.yaml", [arms.upstream_entry(server.label, server.argv)]
    )
    async with AsyncExitStack() as stack:
        direct = await _open(stack, f"direct-{server.label}", server.argv, workdir)
        gateway = await _open(stack, f"watchgate-{server.label}", arms.gateway_command(config), workdir)
        peer = await _open_peer(stack, server, workdir, results["peer"])
        pair = [Arm.of(conn, server.tool, server.arguments) for conn in (direct, gateway)]
        _log(f"{server.label}: warm-up")
        await measure.warm_up(pair, counts.warmup)

        _log(f"{server.label}: latency")
        d, g = await measure.latency(pair, counts.latency_calls, counts.repeats)
        row: dict[str, Any] = {
            "server": server.label,
            "tool": server.tool,
            "direct": d.as_json(),
            "gateway": g.as_json(),
        }
        row["ratio_p50"] = round(g.p50_us / d.p50_us, 3)
        row["added_p50_us"] = round(g.p50_us - d.p50_us, 1)
        row["ratio_p99"] = round(g.p99_us / d.p99_us, 3)
        results["latency"].append(row)

        for k in counts.concurrency:
            _log(f"{server.label}: throughput, {k} outstanding")
            dt, gt = await measure.throughput(pair, counts.throughput_calls, k, counts.repeats)
            item: dict[str, Any] = {
                "server": server.label,
                "concurrency": k,
                "calls": counts.throughput_calls,
            }
            item |= {"direct": round(dt.calls_per_s, 1), "gateway": round(gt.calls_per_s, 1)}
            item["ratio"] = round(gt.calls_per_s / dt.calls_per_s, 3)
            item["samples"] = {"direct": dt.as_json()["samples"], "gateway": gt.as_json()["samples"]}
            results["throughput"].append(item)

        if server.label == "echo":
            _log(f"{server.label}: large result of {counts.large_bytes} bytes")
            big = [Arm.of(conn, "big", {"bytes": counts.large_bytes}) for conn in (direct, gateway)]
            dl, gl = await measure.bytes_per_second(
                big, counts.large_bytes, counts.large_calls, counts.repeats
            )
            results["large"] = {
                "bytes": counts.large_bytes,
                "calls": counts.large_calls,
                "repeats": counts.repeats,
                "direct_mb_s": round(dl, 1),
                "gateway_mb_s": round(gl, 1),
                "ratio": round(gl / dl, 3),
            }
        if peer is not None:
            await _measure_peer(peer, server, counts, results)


def _peer_status() -> dict[str, Any]:
    version = arms.fastmcp_version()
    if version is None:
        note = "skipped: fastmcp is not importable here (pip install 'fastmcp>=2'); its columns stay empty"
        return {"status": "skipped", "fastmcp": None, "note": note, "servers": {}}
    return {"status": "ok", "fastmcp": version, "note": "FastMCP proxy over stdio", "servers": {}}


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
        "trio": trio.__version__,
        "msgspec": msgspec.__version__,
    }


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
        "peer": _peer_status(),
        "plugins": {"status": report.NOT_BUILT},
        "daemon": {"status": report.NOT_BUILT},
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
            await _server(server, counts, workdir, results)
        except BenchError as exc:
            _log(f"{server.label}: FAILED: {exc}")
            results["errors"].append(f"{server.label}: {exc}")
            results["latency"].append({"server": server.label, "error": str(exc)})
    _log(f"fan-out: {counts.fanout.upstreams} upstreams x {counts.fanout.tools} tools")
    try:
        results["fanout"] = await fanout(counts.fanout, workdir)
    except BenchError as exc:
        _log(f"fan-out: FAILED: {exc}")
        results["errors"].append(f"fanout: {exc}")
        results["fanout"] = {"error": str(exc)}
    results["targets"] = report.targets(results)
    return results


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
    print(f"Watchgate {m['watchgate']} ({m['commit']}), {results['mode']} run, {results['date']}")
    pinned = "" if len(m["affinity"]) == m["cpus"] else f", pinned to CPUs {m['affinity']}"
    print(f"{m['cpus']} CPUs ({m['cpu_model']}){pinned}, Python {m['python']}\n")
    print(report.table(results))
    print()
    print(report.targets_table(results["targets"]))
    if args.quick:
        print("\n(--quick: tiny counts; these numbers only show the harness works)")
    if results["errors"]:
        print("\nerrors:\n  " + "\n  ".join(results["errors"]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nresults written to {args.json}")
    return 1 if results["errors"] else 0
