"""``watchgate bench``: what the gateway costs on one of the user's own configured servers.

The same honest comparison as ``python -m watchgate.bench``, on a real setup: the upstream's own
command (with its ``env`` and ``cwd`` from the config) driven directly, against ``watchgate run``
on the whole config, with the same tool call in both arms. Wired into the ``watchgate`` command by
``register(commands)``; ``python -m watchgate.bench.cli ARGS`` runs it standalone.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import msgspec
import trio

from watchgate.bench import arms, measure, report
from watchgate.bench.driver import MAX_WINDOW_BYTES, BenchError, Connection, call_template, spawn
from watchgate.bench.measure import Arm
from watchgate.config import GatewayConfig, Transport, UpstreamConfig, load_config
from watchgate.errors import ConfigError
from watchgate.protocol.namespace import public_name

EXIT_FAILED = 1
EXIT_USAGE = 2


def register(commands: Any) -> None:
    """Add ``bench`` to the ``watchgate`` sub-commands."""
    bench = commands.add_parser(
        "bench",
        help="measure the gateway's cost on one of your servers: direct vs through watchgate",
        description="Call one tool of one configured server directly and through `watchgate run -c CONFIG`, "
        "and print latency (p50/p99) and throughput both ways, with ratios.",
    )
    bench.add_argument("-c", "--config", required=True, help="the YAML config file")
    bench.add_argument("--server", required=True, help="the upstream to measure (its `name` in the config)")
    bench.add_argument("--tool", required=True, help="the tool to call, by the server's own name for it")
    bench.add_argument("--args", default="{}", metavar="JSON", help="the tool's arguments, a JSON object")
    bench.add_argument("-n", "--calls", type=int, default=1000, help="calls per measurement and repeat")
    bench.add_argument("--concurrency", type=int, default=8, help="requests outstanding for throughput")
    bench.add_argument("--repeats", type=int, default=3, help="repeats; medians are reported")
    bench.add_argument("--json", metavar="PATH", help="also write the results here as JSON")
    bench.set_defaults(func=run_bench)


def _error(message: str, code: int) -> int:
    print(f"watchgate bench: {message}", file=sys.stderr)
    return code


def _parse_arguments(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--args is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise TypeError(f"--args must be a JSON object, got {type(value).__name__}: {text}")
    return value


def _find_upstream(config: GatewayConfig, name: str) -> UpstreamConfig:
    for upstream in config.proxy.upstreams:
        if upstream.name == name:
            return upstream
    known = ", ".join(u.name for u in config.proxy.upstreams)
    raise LookupError(f"unknown server {name!r}; the config has: {known}")


def run_bench(args: argparse.Namespace) -> int:
    try:
        arguments = _parse_arguments(args.args)
    except (ValueError, TypeError) as exc:
        return _error(str(exc), EXIT_USAGE)
    if args.calls < 1 or args.concurrency < 1 or args.repeats < 1:
        return _error("-n, --concurrency and --repeats must be at least 1", EXIT_USAGE)
    template = call_template(args.tool, arguments)
    if args.concurrency * (len(template[0]) + len(template[1]) + 12) > MAX_WINDOW_BYTES:
        return _error(f"--args too large for --concurrency {args.concurrency}: lower one of them", EXIT_USAGE)
    try:
        config = load_config(args.config)
        upstream = _find_upstream(config, args.server)
    except (ConfigError, LookupError) as exc:
        return _error(str(exc), EXIT_FAILED)
    if upstream.transport is not Transport.STDIO:
        return _error(
            f"server {upstream.name!r} uses {upstream.transport}: only stdio can be run directly", 1
        )
    args.config_path = Path(args.config).resolve()
    gateway_tool = (
        public_name(upstream.name, args.tool) if upstream.name in config.proxy.prefixed else args.tool
    )
    try:
        with tempfile.TemporaryDirectory(prefix="watchgate-bench-") as tmp:
            results = trio.run(_bench, args, config, upstream, gateway_tool, arguments, Path(tmp))
    except BenchError as exc:
        return _error(str(exc), EXIT_FAILED)
    print(_render(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


async def _probe(conn: Connection, tool: str, arguments: dict[str, Any]) -> None:
    """One call before measuring: a tool that reports an error would make the numbers meaningless."""
    result = msgspec.json.decode(await conn.request("tools/call", {"name": tool, "arguments": arguments}))
    if isinstance(result, dict) and result.get("isError"):
        text = " ".join(
            str(block.get("text", "")) for block in result.get("content", []) if isinstance(block, dict)
        )
        raise BenchError(f"{conn.name}: tool {tool!r} reported an error: {text[:300]} (check --args)")


async def _bench(
    args: argparse.Namespace,
    config: GatewayConfig,
    upstream: UpstreamConfig,
    gateway_tool: str,
    arguments: dict[str, Any],
    workdir: Path,
) -> dict[str, Any]:
    wait = upstream.startup_timeout + config.proxy.startup_wait
    async with AsyncExitStack() as stack:
        direct = await stack.enter_async_context(
            spawn(f"direct-{upstream.name}", upstream.command, workdir, env=upstream.env, cwd=upstream.cwd)
        )
        await direct.initialize(timeout=upstream.startup_timeout)
        tools = await direct.tool_names()
        if args.tool not in tools:
            raise BenchError(
                f"server {upstream.name!r} has no tool {args.tool!r}; it has: {', '.join(tools)}"
            )
        # audit on, as the user runs it, but into a log of the measurement's own
        gateway_argv = arms.gateway_command(args.config_path, audit_log=workdir / "bench-audit.jsonl")
        gateway = await stack.enter_async_context(spawn("watchgate", gateway_argv, workdir))
        await gateway.initialize(timeout=wait)
        await _probe(direct, args.tool, arguments)
        await _probe(gateway, gateway_tool, arguments)
        pair = [Arm.of(direct, args.tool, arguments), Arm.of(gateway, gateway_tool, arguments)]
        await measure.warm_up(pair, max(1, min(100, args.calls // 10)))
        d, g = await measure.latency(pair, args.calls, args.repeats)
        levels = sorted({1, args.concurrency})
        flows = [await measure.throughput(pair, args.calls, k, args.repeats) for k in levels]
    return {
        "server": upstream.name,
        "tool": args.tool,
        "calls": args.calls,
        "repeats": args.repeats,
        "latency": {"direct": d.as_json(), "gateway": g.as_json()},
        "throughput": [
            {"concurrency": k, "direct": round(dt.calls_per_s, 1), "gateway": round(gt.calls_per_s, 1)}
            for k, (dt, gt) in zip(levels, flows, strict=True)
        ],
    }


def _render(results: dict[str, Any]) -> str:
    d, g = results["latency"]["direct"], results["latency"]["gateway"]
    rows = []
    for stat in ("p50_us", "p99_us"):
        ratio = f"{g[stat] / d[stat]:.2f}x" if d[stat] else "-"
        rows.append(
            [
                f"latency {stat[:3]} (us)",
                f"{d[stat]:,.1f}",
                f"{g[stat]:,.1f}",
                ratio,
                f"{g[stat] - d[stat]:+,.1f}",
            ]
        )
    for item in results["throughput"]:
        ratio = f"{item['gateway'] / item['direct']:.2f}x" if item["direct"] else "-"
        label = f"throughput c={item['concurrency']} (calls/s)"
        rows.append([label, f"{item['direct']:,.0f}", f"{item['gateway']:,.0f}", ratio, ""])
    title = (
        f"server {results['server']!r}, tool {results['tool']!r}: "
        f"{results['calls']} calls x {results['repeats']} repeats, medians\n"
    )
    return title + report.render_table(rows, ["measurement", "direct", "watchgate", "wg/direct", "added"])


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m watchgate.bench.cli ARGS`` = ``watchgate bench ARGS``, before the CLI wires it in."""
    parser = argparse.ArgumentParser(prog="watchgate")
    commands = parser.add_subparsers(dest="command", required=True)
    register(commands)
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
