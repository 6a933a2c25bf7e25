"""FastMCP's proxy in front of one stdio MCP server: the peer arm of the benchmark.

Run as ``python peer_fastmcp.py -- COMMAND ARGS...``; it speaks MCP on stdin/stdout like
``watchgate run`` does, so the same raw driver measures both. With ``--http PORT`` it serves
Streamable HTTP at ``/mcp`` on loopback instead (``--stateless``: FastMCP's stateless mode,
each POST on its own), for the HTTP rows. FastMCP is an optional extra and is imported
dynamically: 4.x builds a proxy with ``fastmcp.server.create_proxy(config)``, 2.x with
``FastMCP.as_proxy(config)``; both take the standard ``{"mcpServers": {...}}`` configuration.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from collections.abc import Sequence
from typing import Any


def build_proxy(server: Sequence[str]) -> Any:  # pragma: no cover - needs the optional fastmcp
    config = {"mcpServers": {"upstream": {"command": server[0], "args": list(server[1:])}}}
    create = getattr(importlib.import_module("fastmcp.server"), "create_proxy", None)
    if create is not None:
        return create(config, name="fastmcp-proxy")
    return importlib.import_module("fastmcp").FastMCP.as_proxy(config, name="fastmcp-proxy")


def main(argv: Sequence[str]) -> int:  # pragma: no cover - needs the optional fastmcp
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        print("usage: peer_fastmcp.py [--http PORT [--stateless]] -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="peer_fastmcp.py")
    parser.add_argument("--http", type=int)
    parser.add_argument("--stateless", action="store_true")
    args = parser.parse_args(argv[:split])
    proxy = build_proxy(argv[split + 1 :])
    options: dict[str, Any] = {"transport": "stdio"}
    if args.http is not None:
        options = {"transport": "http", "host": "127.0.0.1", "port": args.http, "log_level": "warning"}
        if args.stateless:
            options["stateless_http"] = True
    if "show_banner" in inspect.signature(proxy.run).parameters:
        options["show_banner"] = False
    proxy.run(**options)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
