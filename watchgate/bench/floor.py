"""Watchgate against the runtime's floor, and against itself without the audit log.

Four arms on the echo server, opened together and measured interleaved like the core pair:
the bare trio pass-through (``passthrough.py``: what any trio process in the middle costs),
``watchgate run`` with the audit log off, ``watchgate run`` with it on (the default), and the
daemon with one ``watchgate attach`` client (stdio handed over). The ratios between them are
design.md §10's targets: ``run`` p50 <= 1.2x the bare trio pass-through, the audit log
on <= 1.15x off in p50 and >= 0.8x in calls/s at 32 outstanding, the daemon path <= 1.15x
``run`` in p50 and >= 0.9x in calls/s. Interleaved, a slow phase of the machine cannot land on
one arm only, which a ratio of two arms measured one after the other cannot promise.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from watchgate.bench import arms, measure
from watchgate.bench.measure import Arm
from watchgate.bench.scenarios import Counts, Server, log, open_connection, open_daemon


async def floor_scenario(counts: Counts, workdir: Path) -> dict[str, Any]:
    server = Server("echo", arms.echo_server(), "echo", {"text": "hello"})
    entry = arms.upstream_entry(server.label, server.argv)
    home = workdir / "floor"
    home.mkdir(exist_ok=True)
    off = arms.write_config(home / "audit-off.yaml", [entry], audit=False)
    on = arms.write_config(home / "audit-on.yaml", [entry])  # its log: watchgate-audit.jsonl beside it
    k = max(counts.concurrency)
    names = ["bare_trio", "audit_off", "audit_on"]
    argvs = (arms.passthrough(server.argv), arms.gateway_command(off), arms.gateway_command(on))
    async with AsyncExitStack() as stack:
        conns = [
            await open_connection(stack, f"floor-{name}", argv, workdir)
            for name, argv in zip(names, argvs, strict=True)
        ]
        group = [Arm.of(conn, server.tool, server.arguments) for conn in conns]
        if arms.daemon_available():  # its own folder: its own audit log, beside its config
            (home / "daemon").mkdir(exist_ok=True)
            config = arms.write_config(home / "daemon" / "audit-on.yaml", [entry])
            names.append("daemon")
            group.append(await open_daemon(stack, server, config, home))
        log("floor: warm-up")
        await measure.warm_up(group, counts.warmup)
        log(f"floor: latency ({', '.join(names)})")
        latencies = await measure.latency(group, counts.latency_calls, counts.repeats)
        log(f"floor: throughput, {k} outstanding")
        flows = await measure.throughput(group, counts.throughput_calls, k, counts.repeats)
    lat = dict(zip(names, latencies, strict=True))
    flow = dict(zip(names, flows, strict=True))
    daemon = {}
    if "daemon" in lat:
        daemon = {
            "daemon_vs_run_p50": round(lat["daemon"].p50_us / lat["audit_on"].p50_us, 3),
            "daemon_vs_run_calls": round(flow["daemon"].calls_per_s / flow["audit_on"].calls_per_s, 3),
        }
    return {
        "status": "ok",
        "server": server.label,
        "tool": server.tool,
        "latency": {name: value.as_json() for name, value in lat.items()},
        "throughput": {name: value.as_json() for name, value in flow.items()},
        "run_vs_bare_trio_p50": round(lat["audit_on"].p50_us / lat["bare_trio"].p50_us, 3),
        "audit_on_vs_off_p50": round(lat["audit_on"].p50_us / lat["audit_off"].p50_us, 3),
        "audit_on_vs_off_calls": round(flow["audit_on"].calls_per_s / flow["audit_off"].calls_per_s, 3),
        **daemon,
    }
