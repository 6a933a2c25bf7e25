"""``watchgate approvals``: the calls a running daemon holds for approval, and deciding them.

``watchgate approvals [--json] [--watch]`` lists them (id, age, server, tool, client, principal,
the arguments as the audit log records them, expires in); ``approve ID`` and ``deny ID
[--reason TEXT]`` decide one; ``forget`` forgets the remembered approvals. The daemon's control
socket admits only its own user, whose name is recorded as the one who decided.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any, Final

import trio

from watchgate.daemon import control
from watchgate.daemon.client import call
from watchgate.daemon.paths import RuntimePaths, find_daemon
from watchgate.errors import ControlError, DaemonNotRunning
from watchgate.sanitize import clean

_WATCH_EVERY: Final = 1.0
_SHOWN: Final = 60  # characters of the arguments a row shows


def register(commands: Any) -> None:
    approvals = commands.add_parser(
        "approvals", help="calls held for a person's approval: list, approve, deny"
    )
    approvals.add_argument("--json", action="store_true", help="machine-readable output")
    approvals.add_argument(
        "--watch", action="store_true", help="list again as calls come and go (Ctrl-C ends)"
    )
    approvals.set_defaults(func=_list, verb=None)
    verbs = approvals.add_subparsers(dest="verb", metavar="VERB")
    approve = verbs.add_parser("approve", help="let a held call run")
    approve.add_argument("id", metavar="ID")
    approve.set_defaults(func=_decide, approve=True, reason=None)
    deny = verbs.add_parser("deny", help="refuse a held call (its client gets a policy error)")
    deny.add_argument("id", metavar="ID")
    deny.add_argument("--reason", help="told to the client and recorded in the audit log")
    deny.set_defaults(func=_decide, approve=False)
    forget = verbs.add_parser("forget", help="forget every remembered approval (ask again)")
    forget.set_defaults(func=_forget)


def _run(action: Any) -> int:
    try:
        code: int = trio.run(action, find_daemon())
    except (DaemonNotRunning, ControlError) as exc:
        print(f"watchgate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


def _list(args: argparse.Namespace) -> int:
    async def listing(paths: RuntimePaths) -> int:
        while True:
            held = await call(paths, control.Approvals())
            if args.json:
                print(json.dumps(held, indent=None if args.watch else 2))
            else:
                _print_table(held)
            if not args.watch:
                return 0
            sys.stdout.flush()
            await trio.sleep(_WATCH_EVERY)
            if not args.json:
                print()

    return _run(listing)


def _print_table(held: list[dict[str, Any]]) -> None:
    if not held:
        print("no calls wait for approval")
        return
    header = ("ID", "AGE", "SERVER", "TOOL", "CLIENT", "WHO", "EXPIRES IN", "ARGUMENTS")
    rows = [
        (
            row["id"],
            f"{row['age']:.0f}s",
            row["server"],
            row["tool"],
            row["client"],
            row["principal"],
            f"{row['expires_in']:.0f}s",
            _shown(row["arguments"]),
        )
        for row in held
    ]
    widths = [max(len(clean(str(r[i]))) for r in (header, *rows)) for i in range(len(header) - 1)]
    for row in (header, *rows):
        cells = [clean(str(cell)).ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, clean(str(row[-1]))]))


def _shown(arguments: Any) -> str:
    text = json.dumps(arguments, ensure_ascii=False)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _decide(args: argparse.Namespace) -> int:
    async def decide(paths: RuntimePaths) -> int:
        request = control.Decide(id=args.id, approve=args.approve, by=getpass.getuser(), reason=args.reason)
        said = await call(paths, request)
        print(clean(str(said)))
        return 0

    return _run(decide)


def _forget(args: argparse.Namespace) -> int:
    async def forget(paths: RuntimePaths) -> int:
        count = await call(paths, control.ForgetApprovals())
        print(f"forgot {count} remembered approval{'s' if count != 1 else ''}")
        return 0

    return _run(forget)
