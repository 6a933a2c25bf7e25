"""``watchgate console``: where the running daemon's web console is (``--open``: open it).

The console is served by the daemon's HTTP listener (``watchgate up --http ADDRESS``) at
``/console``; a daemon without one has no console, and this says how to start one.
"""

from __future__ import annotations

import argparse
import sys
import webbrowser
from typing import Any
from urllib.parse import urlsplit

import trio

from watchgate.daemon import control
from watchgate.daemon.client import call
from watchgate.daemon.paths import RuntimePaths, find_daemon
from watchgate.errors import ControlError, DaemonNotRunning


def register(commands: Any) -> None:
    console = commands.add_parser("console", help="print (or open) the URL of the daemon's web console")
    console.add_argument("--open", action="store_true", help="open it in the default browser")
    console.set_defaults(func=_console)


def _console(args: argparse.Namespace) -> int:
    async def urls(paths: RuntimePaths) -> list[str]:
        report = await call(paths, control.Ps())
        return [
            _console_of(url) for url in report.get("listeners", []) if url.startswith(("http:", "https:"))
        ]

    try:
        found = trio.run(urls, find_daemon())
    except (DaemonNotRunning, ControlError) as exc:
        print(f"watchgate: {exc}", file=sys.stderr)
        return 1
    if not found:
        print(
            "watchgate: the daemon serves no HTTP listener, so no console: start it with "
            "`watchgate up --http 127.0.0.1:8848`",
            file=sys.stderr,
        )
        return 1
    for url in found:
        print(url)
    if args.open:
        webbrowser.open(found[0])
    return 0


def _console_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/console"
