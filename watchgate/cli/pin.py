"""``watchgate pin list`` and ``watchgate pin approve NAME`` (wired by ``watchgate.cli.main``).

The pins file is found the way the ``tool_pinning`` plugin finds it: ``--state FILE``, else the
plugin's ``state_file`` in the config (``-c``, ``$WATCHGATE_CONFIG``, ``./supervisor.yaml``, …),
else ``$WATCHGATE_STATE_DIR``, else next to the config file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from watchgate.config.load import load_config
from watchgate.config.schema import GatewayConfig
from watchgate.daemon.paths import find_config
from watchgate.errors import ConfigError, ConfigNotFound
from watchgate.plugins.pins import STATE_ENV, PinStore, state_path


def config_option() -> argparse.ArgumentParser:
    """``-c/--config``, for the command groups that read the config file (``pin``, ``auth``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c", "--config", help="config file (default: $WATCHGATE_CONFIG, ./supervisor.yaml, …)"
    )
    return common


def register(commands: Any) -> None:
    pin = commands.add_parser("pin", help="tool pins: list them, approve a changed tool")
    verbs = pin.add_subparsers(dest="pin_command", metavar="VERB", required=True)
    common = config_option()
    common.add_argument("--state", help="the pins file (default: as the tool_pinning plugin finds it)")

    listing = verbs.add_parser("list", parents=[common], help="every pinned tool and whether it changed")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=_list)

    approve = verbs.add_parser("approve", parents=[common], help="approve what a tool looks like now")
    approve.add_argument("names", nargs="*", metavar="NAME", help="server__tool, server/tool, or tool")
    approve.add_argument("--all", action="store_true", help="approve every changed or new tool")
    approve.set_defaults(func=_approve)


def _store(args: argparse.Namespace) -> PinStore | None:
    if args.state:
        return PinStore(Path(args.state))
    try:
        path = find_config(args.config)
    except ConfigNotFound as exc:
        if os.environ.get(STATE_ENV):
            return PinStore(state_path(None, None))
        print(f"watchgate pin: {exc} (or give --state FILE)", file=sys.stderr)
        return None
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
    return PinStore(state_path(_configured_state(config), Path(path).resolve().parent))


def _configured_state(config: GatewayConfig) -> str | None:
    entries = [*config.plugins, *(e for u in config.proxy.upstreams for e in u.plugins)]
    for entry in entries:
        if entry.name == "tool_pinning" and isinstance(entry.config, dict) and entry.config.get("state_file"):
            return str(entry.config["state_file"])
    return None


def _list(args: argparse.Namespace) -> int:
    store = _store(args)
    if store is None:
        return 1
    rows = [
        {
            "server": server,
            "tool": tool,
            "status": pin.status,
            "first_seen": pin.first_seen,
            "changed_at": pin.changed_at,
        }
        for server, pins in sorted(store.pins().items())
        for tool, pin in sorted(pins.items())
    ]
    if args.json:
        print(json.dumps({"file": str(store.path), "pins": rows}, indent=2))
        return 0
    if not rows:
        print(f"no pinned tools in {store.path}")
        return 0
    widths = [max(len(str(r[k] or "")) for r in rows) for k in ("server", "tool", "status")]
    header = ("SERVER", "TOOL", "STATUS")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    print(f"{header[0]:<{widths[0]}}  {header[1]:<{widths[1]}}  {header[2]:<{widths[2]}}  SINCE")
    for row in rows:
        since = row["changed_at"] or row["first_seen"]
        print(
            f"{row['server']:<{widths[0]}}  {row['tool']:<{widths[1]}}  {row['status']:<{widths[2]}}  {since}"
        )
    return 0


def _approve(args: argparse.Namespace) -> int:
    store = _store(args)
    if store is None:
        return 1
    pins = store.pins()
    if args.all:
        targets = [
            (s, t) for s, tools in pins.items() for t, pin in tools.items() if pin.status != "approved"
        ]
    elif args.names:
        targets = []
        for name in args.names:
            found = _find(pins, name)
            if isinstance(found, str):
                print(f"watchgate pin: {found}", file=sys.stderr)
                return 1
            targets.append(found)
    else:
        print("watchgate pin approve: give NAME (server__tool) or --all", file=sys.stderr)
        return 2
    for server, tool in targets:
        store.approve(server, tool)
        print(f"approved {server}/{tool}")
    if targets:
        print(_relist(sorted({server for server, _ in targets})))
    else:
        print("nothing to approve")
    return 0


def _relist(servers: list[str]) -> str:
    """Ask a running daemon to list these servers again, so an approved tool reappears at once."""
    import trio

    from watchgate.daemon import control
    from watchgate.daemon.client import call
    from watchgate.daemon.paths import find_daemon
    from watchgate.errors import WatchgateError

    try:
        listed = trio.run(call, find_daemon(), control.Relist(names=servers))
    except (WatchgateError, OSError, RuntimeError):  # RuntimeError: called inside a trio run (tests)
        listed = []
    if listed:
        return f"calls use the approval at once; the daemon lists {', '.join(listed)} again now"
    return (
        "calls use the approval at once; a hidden tool is listed again when its gateway lists that "
        "server next (a daemon not running now: at its start; `watchgate run`: when restarted)"
    )


def _find(pins: dict[str, dict[str, Any]], name: str) -> tuple[str, str] | str:
    """(server, tool) for ``server__tool``, ``server/tool`` or a tool name unique across servers."""
    for separator in ("/", "__"):
        server, sep, tool = name.partition(separator)
        if sep and tool in pins.get(server, {}):
            return server, tool
    owners = [server for server, tools in pins.items() if name in tools]
    if len(owners) == 1:
        return owners[0], name
    if owners:
        choices = ", ".join(f"{server}__{name}" for server in owners)
        return f"{name!r} is pinned on several servers; say which: {choices}"
    return f"no pinned tool {name!r} (see `watchgate pin list`)"
