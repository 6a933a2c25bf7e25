"""Clients over Streamable HTTP: what the gateway costs them, two pairs of arms.

- ``http_listener``: the echo server behind ``watchgate run``, reached by a client over stdio
  and by one over HTTP (``run --http``): the same gateway work behind both, so the difference
  is the HTTP listener (one POST per call, the answer on its response). Its floor is trio +
  h11 answering at once with no gateway behind it (``httpfloor.py``). The same arms under wrk,
  beside hypercorn, uvicorn and FastMCP, are ``httpload.py``'s.
- ``http_gateway``: server-everything in its ``streamableHttp`` mode, reached over HTTP directly
  and through ``watchgate run --http`` in front of it (the gateway reaching it over HTTP too):
  the HTTP path end to end against what that server does alone.

Each pair is measured like every other row (``scenarios.compare``). The audit log is on, as
people run the gateway; each gateway arm writes a log of its own.
"""

from __future__ import annotations

import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from watchgate.bench import arms
from watchgate.bench.httpdriver import free_port, http_server, http_session
from watchgate.bench.measure import Arm
from watchgate.bench.scenarios import Counts, compare, open_connection

__all__ = ["http_gateway_scenario", "http_listener_scenario"]

FLOOR = Path(__file__).resolve().with_name("httpfloor.py")
_ECHO = ("echo", {"text": "hello"})
_EVERYTHING = ("echo", {"message": "hello"})


async def http_listener_scenario(counts: Counts, workdir: Path) -> dict[str, Any]:
    """``watchgate run`` on the echo server: a client over stdio vs a client over HTTP."""
    config = arms.write_config(workdir / "listener.yaml", [arms.upstream_entry("echo", arms.echo_server())])
    port, floor_port = free_port(), free_port()
    served = [*arms.gateway_command(config, workdir / "listener-http.jsonl"), "--http", f"127.0.0.1:{port}"]
    floor = [sys.executable, str(FLOOR), str(floor_port)]
    async with AsyncExitStack() as stack:
        stdio = await open_connection(
            stack,
            "watchgate-stdio-client",
            arms.gateway_command(config, workdir / "listener-stdio.jsonl"),
            workdir,
        )
        await stack.enter_async_context(http_server("watchgate-http-listener", served, port, workdir))
        http = await stack.enter_async_context(http_session("http-client", f"http://127.0.0.1:{port}/mcp"))
        await stack.enter_async_context(http_server("http-floor", floor, floor_port, workdir))
        bare = await stack.enter_async_context(
            http_session("http-floor-client", f"http://127.0.0.1:{floor_port}/")
        )
        pair = [Arm.of(conn, *_ECHO) for conn in (stdio, http)]
        compared = await compare("http listener", pair, counts, floor=Arm.of(bare, *_ECHO))
    return {**compared, "server": "echo", "without_arm": "stdio client", "with_arm": "HTTP client"}


async def http_gateway_scenario(counts: Counts, workdir: Path) -> dict[str, Any]:
    """server-everything over HTTP: directly vs through ``watchgate run --http``."""
    everything = arms.everything_server()
    if everything is None:
        return {"status": "skipped: server-everything not installed (make install)"}
    server_port, gateway_port = free_port(), free_port()
    upstream = {"name": "everything", "transport": "http", "url": f"http://127.0.0.1:{server_port}/mcp"}
    config = arms.write_config(workdir / "http-gateway.yaml", [upstream])
    served = [
        *arms.gateway_command(config, workdir / "http-gateway.jsonl"),
        "--http",
        f"127.0.0.1:{gateway_port}",
    ]
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(
            http_server(
                "everything-http",
                [everything[0], "streamableHttp"],
                server_port,
                workdir,
                env={"PORT": str(server_port)},
            )
        )
        await stack.enter_async_context(http_server("watchgate-http-gateway", served, gateway_port, workdir))
        direct = await stack.enter_async_context(http_session("http-direct", upstream["url"]))
        gateway = await stack.enter_async_context(
            http_session("http-watchgate", f"http://127.0.0.1:{gateway_port}/mcp")
        )
        pair = [Arm.of(conn, *_EVERYTHING) for conn in (direct, gateway)]
        compared = await compare("http gateway", pair, counts)
    return {
        **compared,
        "server": "everything (streamableHttp)",
        "without_arm": "direct",
        "with_arm": "watchgate",
    }
