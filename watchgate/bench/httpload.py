"""HTTP at the runtime's floor: every arm loaded by wrk, a load generator of its own process.

A Python client costs more per request than the servers measured here, so it would measure
itself; wrk (C, keep-alive) does not. Each arm answers the same ``tools/call`` of the echo tool,
every request with a unique id (a Lua script counts them per wrk thread):

- the floors, answering at once with no gateway behind them (``httpfloor.py``): bare trio + h11
  (the runtime's floor, which the targets are ratios of), hypercorn's trio worker, and uvicorn
  (asyncio) for reference;
- ``watchgate run --http`` in front of the echo server, audit log on: a 2025-11-25 session and
  2026-07-28 requests that stand alone;
- FastMCP's proxy in front of the same server over HTTP: a session, and its stateless mode.

p50 is wrk's at one connection; calls/s at 32 connections (two wrk threads). The arms are
measured in turn, ``repeats`` rounds, and each figure is the median of its rounds.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import statistics
import sys
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import trio

from watchgate.bench import arms
from watchgate.bench.driver import BenchError
from watchgate.bench.httpdriver import free_port, http_server, http_session
from watchgate.bench.scenarios import Counts, log

__all__ = ["WrkArm", "http_floor_scenario", "parse_wrk", "wrk_script"]

FLOOR: Final = Path(__file__).resolve().with_name("httpfloor.py")
PEER: Final = Path(__file__).resolve().with_name("peer_fastmcp.py")
MODERN: Final = "2026-07-28"
LEGACY: Final = "2025-11-25"
_CALL: Final = '"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}'
_META: Final = (
    ',"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
    '"io.modelcontextprotocol/clientCapabilities":{},'
    '"io.modelcontextprotocol/clientInfo":{"name":"wrk","version":"1"}}'
)
_ACCEPT: Final = "application/json, text/event-stream"


@dataclass(frozen=True)
class WrkArm:
    """One URL and the request wrk sends it (headers and the body around the id)."""

    name: str
    url: str
    headers: dict[str, str]
    modern: bool = False

    def body(self) -> tuple[str, str]:
        rest = _CALL + (_META if self.modern else "") + "}}"
        return '{"jsonrpc":"2.0","id":', "," + rest


def wrk_script(arm: WrkArm) -> str:
    """The Lua script: POST, the arm's headers, a unique id per request (per thread, offset)."""
    prefix, suffix = arm.body()
    lines = [
        "local n = 0",
        "local made = 0",
        "function setup(thread) made = made + 1; thread:set('tid', made) end",
        'wrk.method = "POST"',
        *(f"wrk.headers[{_lua(k)}] = {_lua(v)}" for k, v in arm.headers.items()),
        "function request()",
        "  n = n + 1",
        "  local id = (tid or 0) * 100000000 + n",
        f"  return wrk.format(nil, nil, nil, {_lua(prefix)} .. id .. {_lua(suffix)})",
        "end",
    ]
    return "\n".join(lines) + "\n"


def _lua(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


_UNITS: Final = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}


def parse_wrk(output: str) -> tuple[float, float | None]:
    """(requests per second, p50 in microseconds or None) from wrk's report; `BenchError` if any
    request failed (a non-2xx answer or a socket error): a fast wrong answer is no measurement."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate is None:
        raise BenchError(f"wrk printed no rate: {output.strip()[-300:]}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*", output)
    if bad is not None or (errors is not None and re.search(r"(read|write|timeout) [1-9]", errors.group())):
        raise BenchError(f"wrk saw failures: {(bad or errors).group()}")  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", output)
    return float(rate.group(1)), None if p50 is None else float(p50.group(1)) * _UNITS[p50.group(2)]


async def _wrk(arm: WrkArm, workdir: Path, connections: int, seconds: float) -> tuple[float, float | None]:
    script = workdir / f"{arm.name}.lua"
    script.write_text(wrk_script(arm))
    threads = 1 if connections == 1 else 2
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-s",
        str(script),
        arm.url,
    ]
    done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
    return parse_wrk(done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace"))


async def _session(stack: AsyncExitStack, name: str, url: str) -> dict[str, str]:
    """A 2025-11-25 session opened at ``url`` (the bench's HTTP client, kept open with
    ``stack``): the headers its later requests carry."""
    return (await stack.enter_async_context(http_session(name, url))).headers


def _modern_headers() -> dict[str, str]:
    return {
        "accept": _ACCEPT,
        "content-type": "application/json",
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": "echo",
    }


def _stateless_headers() -> dict[str, str]:
    return {"accept": _ACCEPT, "content-type": "application/json", "mcp-protocol-version": LEGACY}


async def _open_arms(stack: AsyncExitStack, workdir: Path, *, peers: bool) -> tuple[list[WrkArm], list[str]]:
    """Every arm that can run here, started; and a note for each that cannot. Without ``peers``
    only the h11 floor and Watchgate's arms (a quick run checks the harness)."""
    found: list[WrkArm] = []
    notes: list[str] = []
    echo = arms.echo_server()
    for server in ("h11", "hypercorn", "uvicorn") if peers else ("h11",):
        if server != "h11" and importlib.util.find_spec(server) is None:
            notes.append(f"floor {server}: not installed (the bench extra: make bench)")
            continue
        port = free_port()
        await stack.enter_async_context(
            http_server(f"floor-{server}", [sys.executable, str(FLOOR), str(port), server], port, workdir)
        )
        found.append(WrkArm(f"floor_{server}", f"http://127.0.0.1:{port}/", _stateless_headers()))
    config = arms.write_config(workdir / "http-floor.yaml", [arms.upstream_entry("echo", echo)])
    port = free_port()
    served = [
        *arms.gateway_command(config, workdir / "http-floor-audit.jsonl"),
        "--http",
        f"127.0.0.1:{port}",
    ]
    await stack.enter_async_context(http_server("watchgate-http", served, port, workdir))
    url = f"http://127.0.0.1:{port}/mcp"
    found.append(WrkArm("watchgate_legacy", url, await _session(stack, "wrk-watchgate", url)))
    found.append(WrkArm("watchgate_modern", url, _modern_headers(), modern=True))
    if not peers:
        return found, notes
    if importlib.util.find_spec("fastmcp") is None:
        notes.append("fastmcp: not installed (the bench extra: make bench)")
        return found, notes
    for mode, flags in (("session", []), ("stateless", ["--stateless"])):
        port = free_port()
        argv = [sys.executable, str(PEER), "--http", str(port), *flags, "--", *echo]
        await stack.enter_async_context(http_server(f"fastmcp-{mode}", argv, port, workdir))
        url = f"http://127.0.0.1:{port}/mcp"
        headers = await _session(stack, "wrk-fastmcp", url) if mode == "session" else _stateless_headers()
        found.append(WrkArm(f"fastmcp_{mode}", url, headers))
    return found, notes


async def http_floor_scenario(
    counts: Counts, workdir: Path, *, seconds: float = 3.0, quick: bool = False
) -> dict[str, Any]:
    """``quick``: one round of one second per figure, no warm-up, no peers (the harness only)."""
    if shutil.which("wrk") is None:
        return {"status": "skipped: wrk is not installed (make bench installs it: apt-get install wrk)"}
    home = workdir / "http-floor"
    home.mkdir(exist_ok=True)
    rounds = 1 if quick else max(1, counts.repeats)
    p50s: dict[str, list[float]] = {}
    rates: dict[str, list[float]] = {}
    async with AsyncExitStack() as stack:
        found, notes = await _open_arms(stack, home, peers=not quick)
        for arm in [] if quick else found:  # warm-up: the first calls start what arms start lazily
            await _wrk(arm, home, 1, 1)
        for round_ in range(rounds):
            log(f"http floor: round {round_ + 1} of {rounds}")
            for arm in found:
                _, p50 = await _wrk(arm, home, 1, seconds)
                rate, _ = await _wrk(arm, home, 32, seconds)
                p50s.setdefault(arm.name, []).append(p50 or 0.0)
                rates.setdefault(arm.name, []).append(rate)
    rows = {
        name: {
            "p50_us": round(statistics.median(p50s[name]), 1),
            "calls_per_s": round(statistics.median(rates[name]), 1),
            "p50_samples_us": p50s[name],
            "calls_samples": rates[name],
        }
        for name in p50s
    }
    return {
        "status": "ok",
        "rounds": rounds,
        "seconds": seconds,
        "arms": rows,
        "notes": notes,
        **_ratios(rows),
    }


def _ratios(rows: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The targets' ratios: each Watchgate arm against the trio + h11 floor and FastMCP."""
    out: dict[str, float] = {}
    floor = rows.get("floor_h11")
    for era in ("legacy", "modern"):
        ours = rows.get(f"watchgate_{era}")
        if ours is None or floor is None:
            continue
        out[f"{era}_vs_floor_calls"] = round(ours["calls_per_s"] / floor["calls_per_s"], 3)
        out[f"{era}_vs_floor_p50"] = round(ours["p50_us"] / floor["p50_us"], 3)
        peer = rows.get("fastmcp_session" if era == "legacy" else "fastmcp_stateless")
        if peer is not None:
            out[f"{era}_vs_fastmcp_calls"] = round(ours["calls_per_s"] / peer["calls_per_s"], 3)
    if "watchgate_legacy" in rows and "watchgate_modern" in rows:
        legacy, modern = rows["watchgate_legacy"], rows["watchgate_modern"]
        out["modern_vs_legacy_calls"] = round(modern["calls_per_s"] / legacy["calls_per_s"], 3)
    return out
