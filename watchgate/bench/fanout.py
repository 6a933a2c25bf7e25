"""Fan-out: one gateway in front of many upstreams, against the same servers driven directly.

Three numbers, each median over repeats:

- start: from spawning to ``initialize`` answered with every upstream up (the gateway defers
  ``initialize`` until each upstream has had its first start and its lists are fetched; the
  catalogue is then checked to hold every tool). Direct arm: spawn the same servers and
  initialize them all concurrently from one client.
- warm ``tools/list``: the p50 of sequential lists once the catalogue is cached. Direct arm: one
  ``tools/list`` to every server at once, waiting for all (what a gateway without a cache does).
- memory: VmRSS of the gateway process alone (children excluded) with N upstreams minus with one,
  divided by N - 1: what each idle upstream costs the gateway itself.
"""

from __future__ import annotations

import statistics
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import trio

from watchgate.bench import arms
from watchgate.bench.driver import BenchError, Connection, rss_kib, spawn
from watchgate.bench.measure import percentile


@dataclass(frozen=True)
class FanoutCounts:
    upstreams: int
    tools: int
    list_calls: int
    repeats: int


def _names(count: int) -> list[str]:
    return [f"echo{i:02d}" for i in range(count)]


async def _list_p50_ms(conn: Connection, calls: int) -> float:
    samples = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        await conn.request("tools/list")
        samples.append(time.perf_counter_ns() - start)
    samples.sort()
    return percentile(samples, 0.5) / 1e6


async def _gateway_once(upstreams: int, counts: FanoutCounts, workdir: Path) -> tuple[float, float, int]:
    """One gateway run: (seconds to initialize, warm tools/list p50 ms, VmRSS KiB)."""
    server = arms.echo_server(counts.tools)
    entries = [arms.upstream_entry(name, server) for name in _names(upstreams)]
    config = arms.write_config(workdir / f"fanout-{upstreams}.yaml", entries)
    start = time.perf_counter()
    async with spawn(f"watchgate-fanout-{upstreams}", arms.gateway_command(config), workdir) as conn:
        await conn.initialize()
        up_s = time.perf_counter() - start
        body = msgspec.json.decode(await conn.request("tools/list"))
        found = len(body.get("tools", []))
        if found != upstreams * counts.tools:
            raise BenchError(
                f"gateway with {upstreams} upstreams lists {found} tools, expected {upstreams * counts.tools}"
            )
        list_ms = await _list_p50_ms(conn, counts.list_calls)
        await trio.sleep(0.2)  # let the allocator settle after the burst before reading RSS
        return up_s, list_ms, rss_kib(conn.pid)


async def _direct_once(counts: FanoutCounts, workdir: Path) -> tuple[float, float]:
    """The same servers from one client: (seconds to all initialized, p50 ms of one list round)."""
    server = arms.echo_server(counts.tools)
    async with AsyncExitStack() as stack:
        start = time.perf_counter()
        conns = [
            await stack.enter_async_context(spawn(f"direct-{name}", server, workdir))
            for name in _names(counts.upstreams)
        ]
        async with trio.open_nursery() as nursery:
            for conn in conns:
                nursery.start_soon(conn.initialize)
        up_s = time.perf_counter() - start
        samples = []
        for _ in range(counts.list_calls):
            round_start = time.perf_counter_ns()
            async with trio.open_nursery() as nursery:
                for conn in conns:
                    nursery.start_soon(conn.request, "tools/list")
            samples.append(time.perf_counter_ns() - round_start)
        samples.sort()
        return up_s, percentile(samples, 0.5) / 1e6


async def fanout(counts: FanoutCounts, workdir: Path) -> dict[str, Any]:
    direct_up: list[float] = []
    direct_list: list[float] = []
    gateway_up: list[float] = []
    gateway_list: list[float] = []
    rss_many: list[int] = []
    rss_one: list[int] = []
    for _ in range(counts.repeats):
        up, listed = await _direct_once(counts, workdir)
        direct_up.append(up)
        direct_list.append(listed)
        up, listed, rss = await _gateway_once(counts.upstreams, counts, workdir)
        gateway_up.append(up)
        gateway_list.append(listed)
        rss_many.append(rss)
        rss_one.append((await _gateway_once(1, counts, workdir))[2])
    many, one = statistics.median(rss_many), statistics.median(rss_one)
    per_upstream = (many - one) / 1024 / max(1, counts.upstreams - 1)
    return {
        "upstreams": counts.upstreams,
        "tools_per_upstream": counts.tools,
        "repeats": counts.repeats,
        "list_calls": counts.list_calls,
        "startup_s": {
            "direct": round(statistics.median(direct_up), 4),
            "gateway": round(statistics.median(gateway_up), 4),
        },
        "tools_list_p50_ms": {
            "direct": round(statistics.median(direct_list), 3),
            "gateway": round(statistics.median(gateway_list), 3),
        },
        "gateway_rss_mib": {"one_upstream": round(one / 1024, 2), "all_upstreams": round(many / 1024, 2)},
        "rss_per_upstream_mib": round(per_upstream, 3),
    }
