"""Calls per server and per tool over the last hour, a bucket a minute: the web console's charts.

A message hook at the end of the chain, beside the audit log's (it sees every answered call
with its ``CallContext``, as telemetry does): each answer counts in its minute, with its
latency (sum and maximum) and whether it was an error. Buckets older than an hour are
dropped as new ones open; nothing is kept on disk. It joins the chain only where the chain is
not empty anyway (the audit log or a plugin is on), so it never takes a call off the fast
path that an empty chain allows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import trio
from msgspec import Raw

from watchgate.hooks import CallContext
from watchgate.protocol.jsonrpc import Message

__all__ = ["MINUTES", "CallRates"]

MINUTES: Final = 60


@dataclass
class _Bucket:
    calls: int = 0
    errors: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0


class CallRates:
    def __init__(self, clock: Callable[[], float] = trio.current_time) -> None:
        self._clock = clock
        #: (server, tool) -> minute -> bucket; the minute is the clock's, in whole minutes
        self._series: dict[tuple[str, str], dict[int, _Bucket]] = {}

    # -- the hook ----------------------------------------------------------------------------------

    async def on_request(self, ctx: CallContext, msg: Message) -> Message:
        return msg

    async def on_response(self, ctx: CallContext, msg: Message) -> Message:
        if ctx.method == "tools/call" and ctx.upstream:
            self.count(ctx.upstream, ctx.public_name or ctx.name or "?", ctx.started, msg.is_error)
        return msg

    async def on_notification(self, upstream: str, server: str | None, msg: Message) -> Message | None:
        return msg

    async def on_list(
        self, upstream: str, server: str | None, kind: str, items: list[dict[str, Raw]]
    ) -> list[dict[str, Raw]]:
        return items

    # -- counting and reading --------------------------------------------------------------------

    def count(self, server: str, tool: str, started: float, error: bool) -> None:
        now = self._clock()
        minute = int(now // 60)
        series = self._series.setdefault((server, tool), {})
        bucket = series.get(minute)
        if bucket is None:
            bucket = series[minute] = _Bucket()
            for old in [m for m in series if m <= minute - MINUTES]:
                del series[old]
        took = max(0.0, (now - started) * 1000)
        bucket.calls += 1
        bucket.errors += error
        bucket.total_ms += took
        bucket.max_ms = max(bucket.max_ms, took)

    def last_hour(self) -> list[dict[str, Any]]:
        """Per server and tool, one point a minute for the last hour, oldest first: calls,
        errors, mean and max latency (ms); minutes without calls are zeros."""
        minute = int(self._clock() // 60)
        report = []
        for (server, tool), series in sorted(self._series.items()):
            points = []
            for m in range(minute - MINUTES + 1, minute + 1):
                b = series.get(m, _Bucket())
                mean = round(b.total_ms / b.calls, 2) if b.calls else 0.0
                points.append(
                    {"calls": b.calls, "errors": b.errors, "mean_ms": mean, "max_ms": round(b.max_ms, 2)}
                )
            if any(p["calls"] for p in points):
                report.append({"server": server, "tool": tool, "points": points})
        return report
