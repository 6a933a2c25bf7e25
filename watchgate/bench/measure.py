"""Repeated measurements over several arms, and the statistics reported for them.

Honesty rules, in one place so every scenario follows them: every arm does exactly the same calls
(same bytes, same count), each arm is warmed up first, the arms are interleaved repeat by repeat
(so a slow phase of the machine hits all of them alike), and what is reported is the median over
the repeats of each repeat's statistic.
"""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from watchgate.bench.driver import ClientSession, call_template, run_window


@dataclass(frozen=True)
class Arm:
    """One way to reach the server, and the exact call to make through it.

    Arms differ only where they must: a gateway with several upstreams exposes the tool under a
    namespaced name, so each arm carries its own pre-encoded request.
    """

    conn: ClientSession
    template: tuple[bytes, bytes]

    @classmethod
    def of(cls, conn: ClientSession, tool: str, arguments: dict[str, Any]) -> Arm:
        return cls(conn, call_template(tool, arguments))


def percentile(sorted_values: Sequence[int], fraction: float) -> int:
    """Nearest-rank percentile of an already sorted sequence (no interpolation: a real sample)."""
    if not sorted_values:
        raise ValueError("no samples")
    rank = max(1, round(fraction * len(sorted_values) + 0.5 - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True)
class Latency:
    """Median over repeats of each repeat's p50 and p99, in microseconds."""

    p50_us: float
    p99_us: float
    calls: int
    p50_samples: tuple[float, ...]  # each repeat's p50, so the spread is on record

    def as_json(self) -> dict[str, Any]:
        return {
            "p50_us": round(self.p50_us, 1),
            "p99_us": round(self.p99_us, 1),
            "calls": self.calls,
            "repeats": len(self.p50_samples),
            "p50_samples_us": [round(v, 1) for v in self.p50_samples],
        }


@dataclass(frozen=True)
class Throughput:
    """Median over repeats of calls per second with ``concurrency`` requests outstanding."""

    calls_per_s: float
    concurrency: int
    calls: int
    samples: tuple[float, ...]  # each repeat's calls/s

    def as_json(self) -> dict[str, Any]:
        return {
            "calls_per_s": round(self.calls_per_s, 1),
            "concurrency": self.concurrency,
            "calls": self.calls,
            "samples": [round(v) for v in self.samples],
        }


Sample = Callable[[Arm], Awaitable[float]]


async def interleaved(arms: Sequence[Arm], sample: Sample, repeats: int) -> list[list[float]]:
    """``repeats`` samples per arm, one arm after the other within each repeat."""
    results: list[list[float]] = [[] for _ in arms]
    for _ in range(repeats):
        for i, arm in enumerate(arms):
            results[i].append(await sample(arm))
    return results


async def warm_up(arms: Sequence[Arm], calls: int) -> None:
    """Let every arm's interpreter, caches and allocator settle before anything is recorded."""
    for arm in arms:
        await run_window(arm.conn, arm.template, calls, 1)
        await run_window(arm.conn, arm.template, calls, min(8, calls))


async def latency(arms: Sequence[Arm], calls: int, repeats: int) -> list[Latency]:
    """Sequential calls (one outstanding): the time a client waits for each answer."""
    p50s: list[list[float]] = [[] for _ in arms]
    p99s: list[list[float]] = [[] for _ in arms]
    for _ in range(repeats):
        for i, arm in enumerate(arms):
            _, samples = await run_window(arm.conn, arm.template, calls, 1)
            samples.sort()
            p50s[i].append(percentile(samples, 0.50) / 1000)
            p99s[i].append(percentile(samples, 0.99) / 1000)
    return [
        Latency(statistics.median(p50s[i]), statistics.median(p99s[i]), calls, tuple(p50s[i]))
        for i in range(len(arms))
    ]


async def throughput(arms: Sequence[Arm], calls: int, concurrency: int, repeats: int) -> list[Throughput]:
    """Calls per second with ``concurrency`` requests pipelined on one connection."""

    async def sample(arm: Arm) -> float:
        elapsed_ns, _ = await run_window(arm.conn, arm.template, calls, concurrency)
        return calls / (elapsed_ns / 1e9)

    per_arm = await interleaved(arms, sample, repeats)
    return [Throughput(statistics.median(values), concurrency, calls, tuple(values)) for values in per_arm]


async def bytes_per_second(arms: Sequence[Arm], size: int, calls: int, repeats: int) -> list[float]:
    """MB/s (10^6 bytes of tool result text per second) of sequential calls returning ``size`` bytes."""

    async def sample(arm: Arm) -> float:
        elapsed_ns, _ = await run_window(arm.conn, arm.template, calls, 1)
        return size * calls / (elapsed_ns / 1e9) / 1e6

    return [statistics.median(values) for values in await interleaved(arms, sample, repeats)]
