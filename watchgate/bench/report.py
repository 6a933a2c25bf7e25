"""Turning a results document into the printed table and the verdict on each target.

The JSON written by the harness is the source of truth; the table and the targets are derived
from it here, so a saved ``bench-results.json`` can be re-rendered and compared later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

NOT_BUILT = "not built yet"


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _latency_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for item in results.get("latency", []):
        if "skipped" in item or "error" in item:
            rows.append([f"latency {item['server']}", item.get("skipped") or f"ERROR: {item['error']}"])
            continue
        direct, gateway = item["direct"], item["gateway"]
        for stat in ("p50_us", "p99_us"):
            cells = [
                f"latency {item['server']} {stat[:3]} (us)",
                _num(direct[stat], 1),
                _num(gateway[stat], 1),
                _ratio(_div(gateway[stat], direct[stat])),
                f"{gateway[stat] - direct[stat]:+,.1f}",
            ]
            for name in OPTIONAL:
                value = (item.get(name) or {}).get(stat)
                cells += [_num(value, 1), _ratio(_div(value, direct[stat]))]
            rows.append(cells)
    return rows


def _throughput_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for item in results.get("throughput", []):
        if "skipped" in item or "error" in item:
            rows.append([f"throughput {item['server']}", item.get("skipped") or f"ERROR: {item['error']}"])
            continue
        direct, gateway = item["direct"], item["gateway"]
        cells = [
            f"throughput {item['server']} c={item['concurrency']} (calls/s)",
            _num(direct),
            _num(gateway),
            _ratio(_div(gateway, direct)),
            "",
        ]
        for name in OPTIONAL:
            cells += [_num(item.get(name)), _ratio(_div(item.get(name), direct))]
        rows.append(cells)
    return rows


def _other_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    large = results.get("large", {})
    if "error" in large:
        rows.append(["large message", f"ERROR: {large['error']}"])
    elif large:
        label = f"large {large['bytes'] / 1e6:g} MB result (MB/s)"
        rows.append(
            [label, _num(large["direct_mb_s"], 1), _num(large["gateway_mb_s"], 1), _ratio(large["ratio"])]
        )
    fan = results.get("fanout", {})
    if "error" in fan:
        rows.append(["fan-out", f"ERROR: {fan['error']}"])
    elif fan:
        shape = f"{fan['upstreams']}x{fan['tools_per_upstream']}"
        up, listed = fan["startup_s"], fan["tools_list_p50_ms"]
        rows.append([f"fan-out {shape}: start to all up (s)", _num(up["direct"], 3), _num(up["gateway"], 3)])
        rows.append(
            [
                f"fan-out {shape}: warm tools/list p50 (ms)",
                _num(listed["direct"], 2),
                _num(listed["gateway"], 2),
            ]
        )
        rows.append(
            [f"fan-out {shape}: gateway RSS per upstream (MiB)", "-", _num(fan["rss_per_upstream_mib"], 3)]
        )
    for key, label in (("peer", "fastmcp peer"), ("gatekit", "gatekit peer")):
        peer = results.get(key, {})
        if peer.get("status") != "ok":
            rows.append([label, peer.get("note", "not run")])
    rows.append(["plugins (all built-in security plugins)", _pair_note(results.get("plugins", {}))])
    rows.append(["telemetry (OpenTelemetry spans + metrics)", _pair_note(results.get("telemetry", {}))])
    rows += _floor_rows(results.get("floor", {}))
    for key, label in (
        ("http_listener", "HTTP client vs stdio client (echo, run)"),
        ("http_gateway", "HTTP: direct vs watchgate (everything)"),
    ):
        rows.append([label, _pair_note(results.get(key, {}))])
    rows += _http_floor_rows(results.get("http_floor", {}))
    rows.append(["daemon via `watchgate attach`", results.get("daemon", {}).get("status", NOT_BUILT)])
    return rows


_HTTP_ARMS = {
    "floor_h11": "HTTP floor: bare trio + h11",
    "floor_hypercorn": "HTTP floor: hypercorn (trio worker)",
    "floor_uvicorn": "HTTP floor: uvicorn (asyncio)",
    "watchgate_legacy": "HTTP run --http, 2025-11-25 session",
    "watchgate_modern": "HTTP run --http, 2026-07-28",
    "fastmcp_session": "HTTP FastMCP proxy, session",
    "fastmcp_stateless": "HTTP FastMCP proxy, stateless",
}


def _http_floor_rows(floor: dict[str, Any]) -> list[list[str]]:
    """wrk against each HTTP arm: p50 at one connection, calls/s at 32, and x the h11 floor."""
    if floor.get("status") != "ok":
        return [["HTTP floors (wrk)", str(floor.get("error", floor.get("status", NOT_BUILT)))]]
    arms = floor["arms"]
    base = arms.get("floor_h11")
    rows = []
    for name, label in _HTTP_ARMS.items():
        if name not in arms:
            continue
        arm = arms[name]
        ratio = f" ({_ratio(_div(arm['calls_per_s'], base['calls_per_s']))} of the floor)" if base else ""
        rows.append(
            [label, f"p50 {_num(arm['p50_us'], 1)} us, c=32 {_num(arm['calls_per_s'])} calls/s{ratio}"]
        )
    rows += [["HTTP floors (wrk)", note] for note in floor.get("notes", [])]
    return rows


def _floor_rows(floor: dict[str, Any]) -> list[list[str]]:
    """The echo call through the bare trio pass-through, `run` without and with the audit log."""
    if floor.get("status") != "ok":
        return [["floor (bare trio, audit off/on)", str(floor.get("error", floor.get("status", NOT_BUILT)))]]
    lat, flow = floor["latency"], floor["throughput"]
    rows = []
    labels = {
        "bare_trio": "bare trio pass-through",
        "audit_off": "run, audit log off",
        "audit_on": "run, audit log on",
        "daemon": "daemon via attach, audit on",
    }
    for name, label in labels.items():
        if name not in lat:
            continue
        rows.append(
            [
                f"floor: {label}",
                f"p50 {_num(lat[name]['p50_us'], 1)} us, p99 {_num(lat[name]['p99_us'], 1)} us, "
                f"c={flow[name]['concurrency']} {_num(flow[name]['calls_per_s'])} calls/s",
            ]
        )
    return rows


def _pair_note(pair: dict[str, Any]) -> str:
    """One spanning line: a pair of arms (the gateway without a feature, all plugins or
    telemetry, vs with it; a stdio client vs an HTTP one; direct vs through Watchgate) and the
    difference."""
    if pair.get("status") != "ok":
        return str(pair.get("error", pair.get("status", NOT_BUILT)))
    off, on, tput = pair["without"], pair["with"], pair["throughput"]
    return (
        f"p50 {_num(off['p50_us'], 1)} -> {_num(on['p50_us'], 1)} us ({pair['added_p50_us']:+,.1f}), "
        f"p99 {_num(off['p99_us'], 1)} -> {_num(on['p99_us'], 1)} us ({pair['added_p99_us']:+,.1f}), "
        f"c={tput['concurrency']} {_num(tput['without']['calls_per_s'])} -> "
        f"{_num(tput['with']['calls_per_s'])} calls/s ({_ratio(tput['ratio'])})"
    )


# Columns after the core pair: `watchgate attach` (stdio handed over), `attach` relaying over the
# WebSocket, Gatekit, the FastMCP proxy.
OPTIONAL = ("daemon", "relay", "gatekit", "fastmcp")
HEADER = [
    "measurement",
    "direct",
    "watchgate",
    "wg/direct",
    "added",
    "daemon",
    "dm/direct",
    "relay",
    "rl/direct",
    "gatekit",
    "gk/direct",
    "fastmcp",
    "fm/direct",
]


def _line(cells: list[str], widths: list[int]) -> str:
    """The label left-aligned, numbers right-aligned."""
    padded = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
    return "  ".join(padded).rstrip()


def render_table(rows: list[list[str]], header: list[str] = HEADER) -> str:
    """A plain-text table; a row with two cells is a note that spans the value columns."""
    widths = [len(h) for h in header]
    for row in rows:
        if len(row) > 2:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))
    widths[0] = max([widths[0], *(len(row[0]) for row in rows)])
    lines = [_line(header, widths), "  ".join("-" * w for w in widths)]
    for row in rows:
        if len(row) == 2:
            lines.append(f"{row[0].ljust(widths[0])}  {row[1]}")
        else:
            lines.append(_line(row + [""] * (len(header) - len(row)), widths))
    return "\n".join(lines)


def table(results: dict[str, Any]) -> str:
    return render_table(_latency_rows(results) + _throughput_rows(results) + _other_rows(results))


def _find(items: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    for item in items:
        if all(item.get(k) == v for k, v in match.items()) and "direct" in item:
            return item
    return None


Check = tuple[str, str, Callable[[dict[str, Any]], float | None], Callable[[float], bool], str]


def _echo_latency(results: dict[str, Any], key: str) -> float | None:
    item = _find(results.get("latency", []), server="echo")
    return None if item is None else float(item[key])


def _min_throughput_ratio(results: dict[str, Any]) -> float | None:
    ratios = [item["ratio"] for item in results.get("throughput", []) if "ratio" in item]
    return min(ratios) if ratios else None


def _echo32(results: dict[str, Any]) -> float | None:
    item = _find(results.get("throughput", []), server="echo", concurrency=32)
    return None if item is None else float(item["gateway"])


def _daemon_vs_run_p50(results: dict[str, Any]) -> float | None:
    """The daemon path (a client on `attach`) against `watchgate run`, in one run: interleaved
    in the floor scenario when it ran, else the optional daemon column."""
    if "daemon_vs_run_p50" in results.get("floor", {}):
        return float(results["floor"]["daemon_vs_run_p50"])
    item = _find(results.get("latency", []), server="echo")
    if item is None or "daemon" not in item:
        return None
    return float(item["daemon"]["p50_us"]) / float(item["gateway"]["p50_us"])


def _daemon_vs_run_calls(results: dict[str, Any]) -> float | None:
    if "daemon_vs_run_calls" in results.get("floor", {}):
        return float(results["floor"]["daemon_vs_run_calls"])
    item = _find(results.get("throughput", []), server="echo", concurrency=32)
    if item is None or "daemon" not in item:
        return None
    return float(item["daemon"]) / float(item["gateway"])


def _floor(results: dict[str, Any], key: str) -> float | None:
    value = results.get("floor", {}).get(key)
    return None if value is None else float(value)


def _gatekit_calls(results: dict[str, Any]) -> float | None:
    """Watchgate's calls/s over Gatekit's, echo at 32 outstanding (both audit on/off as shipped)."""
    item = _find(results.get("throughput", []), server="echo", concurrency=32)
    if item is None or not item.get("gatekit"):
        return None
    return float(item["gateway"]) / float(item["gatekit"])


def _http(results: dict[str, Any], key: str) -> float | None:
    value = results.get("http_floor", {}).get(key)
    return None if value is None else float(value)


def _fan(results: dict[str, Any], *path: str) -> float | None:
    node: Any = results.get("fanout", {})
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return float(node)


CHECKS: list[Check] = [
    (
        "added p50, echo server",
        "<= 60 us",
        lambda r: _echo_latency(r, "added_p50_us"),
        lambda v: v <= 60,
        "us",
    ),
    ("p50 ratio, echo server", "<= 1.15x", lambda r: _echo_latency(r, "ratio_p50"), lambda v: v <= 1.15, "x"),
    ("throughput vs direct (worst row)", ">= 0.9x", _min_throughput_ratio, lambda v: v >= 0.9, "x"),
    ("gateway calls/s, echo, c=32", ">= 25,000", _echo32, lambda v: v >= 25000, "calls/s"),
    (
        "fan-out warm tools/list",
        "< 20 ms",
        lambda r: _fan(r, "tools_list_p50_ms", "gateway"),
        lambda v: v < 20,
        "ms",
    ),
    ("fan-out start to all up", "< 2 s", lambda r: _fan(r, "startup_s", "gateway"), lambda v: v < 2, "s"),
    (
        "gateway RSS per idle upstream",
        "< 2 MiB",
        lambda r: _fan(r, "rss_per_upstream_mib"),
        lambda v: v < 2,
        "MiB",
    ),
    (
        "plugins added p50 (all built-ins)",
        "< 100 us",
        lambda r: r.get("plugins", {}).get("added_p50_us"),
        lambda v: v < 100,
        "us",
    ),
    ("large result vs direct", ">= 0.8x", lambda r: r.get("large", {}).get("ratio"), lambda v: v >= 0.8, "x"),
    ("daemon p50 / run p50, echo", "<= 1.15x", _daemon_vs_run_p50, lambda v: v <= 1.15, "x"),
    ("daemon calls/s / run, echo, c=32", ">= 0.9x", _daemon_vs_run_calls, lambda v: v >= 0.9, "x"),
    (
        "run p50 / bare trio pass-through p50",
        "<= 1.2x",
        lambda r: _floor(r, "run_vs_bare_trio_p50"),
        lambda v: v <= 1.2,
        "x",
    ),
    (
        "audit on / off p50, echo",
        "<= 1.15x",
        lambda r: _floor(r, "audit_on_vs_off_p50"),
        lambda v: v <= 1.15,
        "x",
    ),
    (
        "audit on / off calls/s, echo, c=32",
        ">= 0.8x",
        lambda r: _floor(r, "audit_on_vs_off_calls"),
        lambda v: v >= 0.8,
        "x",
    ),
    ("run calls/s / Gatekit, echo, c=32", ">= 10x", _gatekit_calls, lambda v: v >= 10, "x"),
    *(
        check
        for era, label, peer in (("legacy", "2025-11-25", "session"), ("modern", "2026-07-28", "stateless"))
        for check in (
            (
                f"HTTP {label} calls/s / trio + h11 floor, c=32",
                ">= 0.5x",
                lambda r, era=era: _http(r, f"{era}_vs_floor_calls"),
                lambda v: v >= 0.5,
                "x",
            ),
            (
                f"HTTP {label} p50 / trio + h11 floor p50",
                "<= 2.5x",
                lambda r, era=era: _http(r, f"{era}_vs_floor_p50"),
                lambda v: v <= 2.5,
                "x",
            ),
            (
                f"HTTP {label} calls/s / FastMCP ({peer}), c=32",
                ">= 10x",
                lambda r, era=era: _http(r, f"{era}_vs_fastmcp_calls"),
                lambda v: v >= 10,
                "x",
            ),
        )
    ),
    (
        "HTTP 2026-07-28 calls/s / 2025-11-25, c=32",
        ">= 1.0x",
        lambda r: _http(r, "modern_vs_legacy_calls"),
        lambda v: v >= 1.0,
        "x",
    ),
]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each design.md §10 target with the value reached and whether it is met."""
    out = []
    for name, target, value_of, ok, unit in CHECKS:
        value = value_of(results)
        out.append(
            {
                "name": name,
                "target": target,
                "value": None if value is None else round(value, 3),
                "unit": unit,
                "met": None if value is None else ok(value),
            }
        )
    return out


def _short(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def targets_table(checks: list[dict[str, Any]]) -> str:
    rows = []
    for check in checks:
        value = "-" if check["value"] is None else f"{_short(check['value'])} {check['unit']}"
        verdict = {True: "met", False: "NOT met", None: "not measured"}[check["met"]]
        rows.append([check["name"], check["target"], value, verdict])
    return render_table(rows, ["target", "goal", "reached", "verdict"])
