"""``watchgate ps``: the servers in a table, one server in full (``ps NAME``), its tools
(``--tools NAME``), the attached clients (``--clients``); ``--watch`` redraws it until Ctrl-C.

Colours only on a terminal, and never with ``NO_COLOR`` set (no-color.org) or ``TERM=dumb``.
What peers chose (names, errors, stderr) is escaped before it reaches the terminal.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Final, TextIO

import msgspec
import trio

from watchgate.daemon import control
from watchgate.daemon.client import call
from watchgate.daemon.paths import RuntimePaths
from watchgate.sanitize import escape_controls

__all__ = ["register"]

_STATE_COLOURS: Final = {
    "running": "32",  # green
    "starting": "36",  # cyan
    "backoff": "33",  # yellow
    "needs-login": "33",
    "stopped": "2",  # dim
    "failed": "31",  # red
    "exited": "31",  # just ended: the supervisor decides (backoff, failed or stopped)
}
_CLEAR: Final = "\x1b[H\x1b[2J"
_UPSTREAM_HEADER: Final = [
    "NAME", "TRANSPORT", "STATE", "PID", "UPTIME", "RESTARTS", "TOOLS", "IN-FLIGHT", "SANDBOX", "LAST ERROR",
]  # fmt: skip
_EXAMPLES: Final = """examples:
  watchgate ps                  every server: state, pid, uptime, restarts, tools
  watchgate ps github           one server in full: command, processes, tools, events
  watchgate ps --watch          redraw every 2 s until Ctrl-C
  watchgate ps --tools github   the names clients call its tools by
"""


def register(
    commands: Any, control_runner: Callable[[Callable[[RuntimePaths], Awaitable[int]]], int]
) -> None:
    ps = commands.add_parser(
        "ps",
        help="the servers and their state (or one server in full)",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ps.add_argument("name", nargs="?", metavar="NAME", help="show this server in full")
    ps.add_argument("--json", action="store_true", help="machine-readable output")
    ps.add_argument("--tools", metavar="NAME", help="list that server's tools with their public names")
    ps.add_argument("--clients", action="store_true", help="list attached clients")
    ps.add_argument(
        "--watch", nargs="?", const=2.0, type=float, metavar="SECONDS", help="redraw every SECONDS (2)"
    )
    ps.set_defaults(func=lambda args: control_runner(lambda paths: _ps(args, paths)))


async def _ps(args: argparse.Namespace, paths: RuntimePaths) -> int:
    if args.watch is None:
        await _show(args, paths, sys.stdout)
        return 0
    while True:  # until Ctrl-C (130) or the daemon goes away (its error, 1)
        if sys.stdout.isatty():
            sys.stdout.write(_CLEAR)
        await _show(args, paths, sys.stdout)
        sys.stdout.flush()
        await trio.sleep(max(args.watch, 0.2))


async def _show(args: argparse.Namespace, paths: RuntimePaths, out: TextIO) -> None:
    colour = _colour_enabled(out)
    if args.tools:
        tools = await call(paths, control.Tools(name=args.tools))
        if args.json:
            print(msgspec.json.encode(tools).decode(), file=out)
        else:
            print_table(["NAME", "UPSTREAM NAME"], [[t["name"], t["upstream_name"]] for t in tools], out)
        return
    if args.name:
        detail = await call(paths, control.Detail(name=args.name))
        if args.json:
            print(msgspec.json.encode(detail).decode(), file=out)
        else:
            _print_detail(detail, out, colour)
        return
    report = await call(paths, control.Ps())
    if args.json:
        print(msgspec.json.encode(report).decode(), file=out)
    elif args.clients:
        rows = [
            [
                c["id"],
                _client_name(c),
                c["pid"] or c.get("peer") or "-",
                duration(c["attached_for"]),
                c["in_flight"],
                c.get("profile") or "-",
                f"{c['principal']} ({c['proven_by']})" if c.get("principal") else "-",
            ]
            for c in report["clients"]
        ]
        header = ["ID", "CLIENT", "PID/ADDRESS", "ATTACHED", "IN-FLIGHT", "PROFILE", "WHO"]
        print_table(header, rows, out)
    else:
        rows = [upstream_row(u) for u in report["upstreams"]]
        print_table(_UPSTREAM_HEADER, rows, out, colour_column=2 if colour else None)
        print(audit_line(report.get("audit")), file=out)
        http = [where for where in report.get("listeners", []) if not where.startswith("unix:")]
        if http:
            print(f"http: {', '.join(http)}", file=out)


def _client_name(client: dict[str, Any]) -> str:
    name = f"{client['name']} {client['version']}".strip()
    if client.get("one_request"):  # a 2026-07-28 request over HTTP: no session, no handshake
        return "one request (2026-07-28)" if name == "?" else f"{name} (one request)"
    return name


def _print_detail(detail: dict[str, Any], out: TextIO, colour: bool) -> None:
    row = detail["row"]
    name, state = escape_controls(row["name"]), _coloured(upstream_row(row)[2], colour)
    where = f"pid {row['pid']}" if row["pid"] else (row.get("host") or "no process")
    uptime = f"up {duration(row['uptime'])}" if row["uptime"] is not None else "not running"
    print(f"{name}  {state}  {where}  {uptime}  restarts {row['restarts']}", file=out)
    speaks = detail["protocol"] and f"MCP {detail['protocol']}" + (
        f", {detail['server']}" if detail["server"] else ""
    )
    lines = [
        ("transport", f"{row['transport']}" + (f" ({speaks})" if speaks else "")),
        ("runs", detail["target"]),
        ("policy", detail["policy"]),
        ("sandbox", row.get("sandbox", "-")),
        ("in flight", str(row["in_flight"])),
    ]
    for label, value in lines:
        print(f"  {label:<10} {escape_controls(str(value))}", file=out)
    for n, process in enumerate(detail["processes"]):
        indent = "  " * process["depth"] + ("└ " if process["depth"] else "")
        label = "processes" if n == 0 else ""
        print(f"  {label:<10} {indent}{process['pid']} {escape_controls(process['command'])}", file=out)
    tools = detail["tools"]
    print(
        f"  {'tools':<10} {len(tools)}" + (f": {escape_controls(', '.join(tools))}" if tools else ""),
        file=out,
    )
    if row["last_error"]:
        print(f"  {'last error':<10} {escape_controls(row['last_error'])}", file=out)
    for label, entries in (("events", detail["events"]), ("stderr", detail["stderr"])):
        for n, line in enumerate(entries):
            print(f"  {label if n == 0 else '':<10} {escape_controls(line)}", file=out)


def audit_line(audit: dict[str, Any] | None) -> str:
    if audit is None or not audit.get("enabled"):
        return "audit: off"
    if not audit["healthy"]:
        return f"audit: FAILING, requests are refused ({audit['last_error']}); log {audit['path']}"
    lost = f", {audit['records_lost']} lost" if audit["records_lost"] else ""
    return f"audit: ok, {audit['records_written']} records{lost}; log {audit['path']}"


def upstream_row(u: dict[str, Any]) -> list[Any]:
    state = u["state"]
    if state == "backoff" and u["next_restart_in"] is not None:
        state = f"backoff ({u['next_restart_in']:.1f}s)"
    return [
        u["name"],
        "+".join([u["transport"], *(u.get("also_speaks") or ())]),  # both eras open: http+2025-11-25
        state,
        u["pid"] or u.get("host") or "-",  # a remote server: its host
        duration(u["uptime"]) if u["uptime"] is not None else "-",
        u["restarts"],
        u["tools"],
        u["in_flight"],
        u.get("sandbox", "-"),
        (u["last_error"] or "-")[:80],
    ]


def duration(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def print_table(
    header: list[str],
    rows: list[list[Any]],
    out: TextIO,
    *,
    colour_column: int | None = None,
    indent: str = "",
) -> None:
    """Aligned columns; what peers or files chose is escaped before it reaches the terminal."""
    cells = [header, *[[escape_controls(str(c)) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        if colour_column is not None and n > 0:  # padding first: escape codes take no columns
            padded[colour_column] = _coloured(padded[colour_column], True)
        print(indent + "  ".join(padded).rstrip(), file=out)


def _colour_enabled(out: TextIO) -> bool:
    """A terminal that has not asked for none (``NO_COLOR``, ``TERM=dumb``)."""
    if "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb":
        return False
    return out.isatty()


def _coloured(text: str, colour: bool) -> str:
    code = _STATE_COLOURS.get(text.split(" ")[0].strip())
    return f"\x1b[{code}m{text}\x1b[0m" if colour and code else text
