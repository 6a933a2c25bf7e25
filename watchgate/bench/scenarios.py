"""The per-server scenario: latency, throughput and large results, direct vs through Watchgate.

The core arms, the server alone and ``watchgate run`` in front of it, are opened together, warmed
up and measured interleaved (see ``measure.py``). The optional arms, the daemon through
``watchgate attach`` and FastMCP's proxy, are measured right after with the same calls; each
one's failure is recorded and never fails the run, because they are not what the run is for.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from watchgate.bench import arms, measure
from watchgate.bench.driver import BenchError, Connection, spawn
from watchgate.bench.fanout import FanoutCounts
from watchgate.bench.measure import Arm


@dataclass(frozen=True)
class Counts:
    """How much work each measurement does; ``calls`` are per repeat and per arm."""

    warmup: int
    latency_calls: int
    throughput_calls: int
    peer_calls: int  # FastMCP is ~10-50x slower per call: the same calls, fewer of them, on record
    daemon_calls: int  # the daemon arm: the same calls, fewer of them, to keep the run short
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
    daemon_calls=20,
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
    daemon_calls=1500,
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


_START = time.monotonic()


def log(message: str) -> None:
    """Progress on stderr, with the time since start, so a slow phase is easy to spot."""
    print(f"[bench {time.monotonic() - _START:6.1f}s] {message}", flush=True, file=sys.stderr)


async def open_connection(
    stack: AsyncExitStack, name: str, argv: list[str], workdir: Path, env: dict[str, str] | None = None
) -> Connection:
    conn = await stack.enter_async_context(spawn(name, argv, workdir, env=env))
    await conn.initialize()
    return conn


def optional_arms() -> dict[str, dict[str, Any]]:
    """The status of the optional arms, filled in per server as they run."""
    version = arms.fastmcp_version()
    peer: dict[str, Any]
    if version is None:
        note = "skipped: fastmcp is not importable here (pip install 'fastmcp>=2'); its column stays empty"
        peer = {"status": "skipped", "fastmcp": None, "note": note, "servers": {}}
    else:
        peer = {"status": "ok", "fastmcp": version, "note": "FastMCP proxy over stdio", "servers": {}}
    gatekit: dict[str, Any]
    if arms.gatekit_available():
        note = f"Gatekit {arms.GATEKIT_VERSION} (gatekit-gateway --config), no plugins, over stdio"
        gatekit = {"status": "ok", "gatekit": arms.GATEKIT_VERSION, "note": note, "servers": {}}
    else:
        note = f"skipped: {arms.GATEKIT} is not installed (make bench installs it)"
        gatekit = {"status": "skipped", "gatekit": None, "note": note, "servers": {}}
    if arms.daemon_available():
        daemon = {"status": "ok", "note": "watchgate up --foreground + watchgate attach", "servers": {}}
        relay = {
            "status": "ok",
            "note": "the same with WATCHGATE_ATTACH_RELAY=1 (the WebSocket relay)",
            "servers": {},
        }
    else:
        daemon = {"status": "not built yet", "note": "this tree has no `watchgate up`", "servers": {}}
        relay = dict(daemon, servers={})
    return {"peer": peer, "gatekit": gatekit, "daemon": daemon, "relay": relay}


async def _open_gatekit(stack: AsyncExitStack, server: Server, workdir: Path) -> Arm:
    argv = arms.gatekit_gateway(server.label, server.argv, workdir)
    conn = await open_connection(stack, f"gatekit-{server.label}", argv, workdir)
    return Arm.of(conn, arms.resolve_tool(await conn.tool_names(), server.tool), server.arguments)


async def _open_peer(stack: AsyncExitStack, server: Server, workdir: Path) -> Arm:
    conn = await open_connection(stack, f"fastmcp-{server.label}", arms.fastmcp_proxy(server.argv), workdir)
    return Arm.of(conn, arms.resolve_tool(await conn.tool_names(), server.tool), server.arguments)


async def open_daemon(
    stack: AsyncExitStack, server: Server, config: Path, workdir: Path, *, relay: bool = False
) -> Arm:
    """A private daemon (its own runtime directory) and one ``watchgate attach`` session to it;
    ``relay`` makes ``attach`` relay over the WebSocket instead of handing its stdio over."""
    kind = "relay" if relay else "daemon"
    runtime = workdir / f"run-{kind}-{server.label}"
    env = {"WATCHGATE_RUNTIME_DIR": str(runtime)}
    up = arms.daemon_up(config)
    daemon = await stack.enter_async_context(
        spawn(f"{kind}-{server.label}", up, workdir, env=env, term_first=True)
    )
    socket = arms.daemon_socket(runtime)
    for _ in range(3000):  # another process creates the socket: nothing to wait on but time
        if socket.exists():
            break
        if daemon.process.poll() is not None:
            raise BenchError(f"daemon exited with {daemon.process.returncode}: {daemon.stderr_tail()}")
        await trio.sleep(0.02)
    else:
        raise BenchError(f"the daemon did not listen on {socket} within 60 s: {daemon.stderr_tail()}")
    if relay:
        env["WATCHGATE_ATTACH_RELAY"] = "1"
    conn = await open_connection(
        stack, f"attach-{kind}-{server.label}", arms.daemon_attach(), workdir, env=env
    )
    return Arm.of(conn, server.tool, server.arguments)


async def _measure_optional(
    name: str, arm: Arm, calls: tuple[int, int], server: Server, counts: Counts, results: dict[str, Any]
) -> None:
    """Add an optional arm's column to this server's latency and throughput rows."""
    latency_calls, throughput_calls = calls
    row = results["latency"][-1]
    rows = results["throughput"][-len(counts.concurrency) :]
    log(f"{server.label}: {name}")
    await measure.warm_up([arm], min(counts.warmup, latency_calls))
    (lat,) = await measure.latency([arm], latency_calls, counts.repeats)
    row[name] = lat.as_json()
    row[f"{name}_ratio_p50"] = round(lat.p50_us / row["direct"]["p50_us"], 3)
    for item, k in zip(rows, counts.concurrency, strict=True):
        n = max(k, throughput_calls)
        (flow,) = await measure.throughput([arm], n, k, counts.repeats)
        item |= {name: round(flow.calls_per_s, 1), f"{name}_calls": n}
        item[f"{name}_ratio"] = round(flow.calls_per_s / item["direct"], 3)


Opener = Callable[[AsyncExitStack], Awaitable[Arm]]
PEERS = ("gatekit", "fastmcp")  # ~10-50x slower per call: the same calls, fewer of them


async def _optional(
    name: str, status: dict[str, Any], server: Server, counts: Counts, results: dict[str, Any], opener: Opener
) -> None:
    if status["status"] != "ok":
        return
    per_arm = counts.peer_calls if name in PEERS else counts.daemon_calls
    calls = (per_arm, per_arm)
    try:
        async with AsyncExitStack() as stack:
            arm = await opener(stack)
            await _measure_optional(name, arm, calls, server, counts, results)
    except BenchError as exc:
        status["servers"][server.label] = f"failed: {exc}"
        log(f"{name} arm for {server.label} failed (recorded, the run goes on): {exc}")
        return
    status["servers"][server.label] = "ok"


async def server_scenario(server: Server, counts: Counts, workdir: Path, results: dict[str, Any]) -> None:
    """Latency and throughput rows for one server (and the large-message row for the echo one)."""
    entry = arms.upstream_entry(server.label, server.argv)
    config = arms.write_config(workdir / f"{server.label}.yaml", [entry])
    async with AsyncExitStack() as stack:
        direct = await open_connection(stack, f"direct-{server.label}", server.argv, workdir)
        gateway = await open_connection(
            stack, f"watchgate-{server.label}", arms.gateway_command(config), workdir
        )
        pair = [Arm.of(conn, server.tool, server.arguments) for conn in (direct, gateway)]
        log(f"{server.label}: warm-up")
        await measure.warm_up(pair, counts.warmup)

        log(f"{server.label}: latency")
        d, g = await measure.latency(pair, counts.latency_calls, counts.repeats)
        row: dict[str, Any] = {"server": server.label, "tool": server.tool}
        row |= {"direct": d.as_json(), "gateway": g.as_json()}
        row["ratio_p50"] = round(g.p50_us / d.p50_us, 3)
        row["added_p50_us"] = round(g.p50_us - d.p50_us, 1)
        row["ratio_p99"] = round(g.p99_us / d.p99_us, 3)
        results["latency"].append(row)

        for k in counts.concurrency:
            log(f"{server.label}: throughput, {k} outstanding")
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
            log(f"{server.label}: large result of {counts.large_bytes} bytes")
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

    async def open_attached(stack: AsyncExitStack) -> Arm:
        return await open_daemon(stack, server, config, workdir)

    async def open_relay(stack: AsyncExitStack) -> Arm:
        return await open_daemon(stack, server, config, workdir, relay=True)

    async def open_gatekit(stack: AsyncExitStack) -> Arm:
        return await _open_gatekit(stack, server, workdir)

    async def open_peer(stack: AsyncExitStack) -> Arm:
        return await _open_peer(stack, server, workdir)

    await _optional("daemon", results["daemon"], server, counts, results, open_attached)
    await _optional("relay", results["relay"], server, counts, results, open_relay)
    await _optional("gatekit", results["gatekit"], server, counts, results, open_gatekit)
    await _optional("fastmcp", results["peer"], server, counts, results, open_peer)


PLUGINS_AUDIT_NOTE = (
    "audit log off in both arms of this row, so it isolates the plugins; every other gateway row "
    "(and the daemon arm) runs with the audit log on, the default"
)


async def plugins_scenario(counts: Counts, workdir: Path) -> dict[str, Any]:
    """``watchgate run`` on the echo server without plugins vs with all six built-ins.

    The two gateway arms are measured like the direct/watchgate pair (warmed up, interleaved,
    medians over the repeats); the difference is the cost of the plugin pipeline per call.
    """
    server = Server("echo", arms.echo_server(), "echo", {"text": "hello"})
    entry = arms.upstream_entry(server.label, server.argv)
    plugins = arms.builtin_plugins(workdir)
    bare = arms.write_config(workdir / "plugins-off.yaml", [entry], audit=False)
    full = arms.write_config(workdir / "plugins-on.yaml", [entry], plugins=plugins, audit=False)
    compared = await _off_on("plugins", server, bare, full, counts, workdir)
    return {**compared, "plugins": [plugin["name"] for plugin in plugins], "audit": PLUGINS_AUDIT_NOTE}


async def telemetry_scenario(counts: Counts, workdir: Path) -> dict[str, Any]:
    """``watchgate run`` on the echo server without telemetry vs with it (every span and metric
    exported over OTLP/HTTP to a local sink that answers at once): what tracing costs per call.
    Without it the SDK is never imported: that arm runs the code the other rows measure."""
    server = Server("echo", arms.echo_server(), "echo", {"text": "hello"})
    entry = arms.upstream_entry(server.label, server.argv)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, _otlp_sink, 0)
        port = listeners[0].socket.getsockname()[1]
        telemetry = {"otlp_endpoint": f"http://127.0.0.1:{port}", "metrics_interval": 1}
        bare = arms.write_config(workdir / "telemetry-off.yaml", [entry], audit=False)
        traced = arms.write_config(workdir / "telemetry-on.yaml", [entry], audit=False, telemetry=telemetry)
        compared = await _off_on("telemetry", server, bare, traced, counts, workdir)
        nursery.cancel_scope.cancel()
    return compared


_SINK_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"


async def _otlp_sink(stream: trio.SocketStream) -> None:
    """An OTLP/HTTP collector that keeps nothing: each POST is read and answered 200."""
    buffered = b""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while True:
            while b"\r\n\r\n" not in buffered:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buffered += data
            head, _, buffered = buffered.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            while len(buffered) < length:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buffered += data
            buffered = buffered[length:]
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"
            )


async def _off_on(
    label: str, server: Server, off_config: Path, on_config: Path, counts: Counts, workdir: Path
) -> dict[str, Any]:
    """Two ``watchgate run`` arms on one server, measured like the direct/watchgate pair."""
    async with AsyncExitStack() as stack:
        without = await open_connection(
            stack, f"watchgate-{label}-off", arms.gateway_command(off_config), workdir
        )
        with_ = await open_connection(
            stack, f"watchgate-{label}-on", arms.gateway_command(on_config), workdir
        )
        pair = [Arm.of(conn, server.tool, server.arguments) for conn in (without, with_)]
        compared = await compare(label, pair, counts)
    return {**compared, "server": server.label, "tool": server.tool}


async def compare(label: str, pair: list[Arm], counts: Counts, floor: Arm | None = None) -> dict[str, Any]:
    """Two arms measured like the direct/watchgate pair (warmed up, interleaved, medians over
    the repeats): what the second ("with") costs over the first ("without"). A ``floor`` arm,
    what any process in that place costs, is measured interleaved with them."""
    k = max(counts.concurrency)
    measured = [*pair, floor] if floor is not None else pair
    log(f"{label}: warm-up")
    await measure.warm_up(measured, counts.warmup)
    log(f"{label}: latency")
    off, on, *below = await measure.latency(measured, counts.latency_calls, counts.repeats)
    log(f"{label}: throughput, {k} outstanding")
    off_t, on_t, *below_t = await measure.throughput(measured, counts.throughput_calls, k, counts.repeats)
    compared: dict[str, Any] = {
        "status": "ok",
        "without": off.as_json(),
        "with": on.as_json(),
        "added_p50_us": round(on.p50_us - off.p50_us, 1),
        "added_p99_us": round(on.p99_us - off.p99_us, 1),
        "throughput": {
            "concurrency": k,
            "calls": counts.throughput_calls,
            "without": off_t.as_json(),
            "with": on_t.as_json(),
            "ratio": round(on_t.calls_per_s / off_t.calls_per_s, 3),
        },
    }
    if floor is not None:
        (lat,), (flow,) = below, below_t
        compared["floor"] = {**lat.as_json(), "calls_per_s": round(flow.calls_per_s, 1)}
    return compared
