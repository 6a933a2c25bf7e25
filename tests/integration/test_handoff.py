"""`attach` hands the client's stdin and stdout to the daemon (SCM_RIGHTS), which then serves the
client on its own pipes; the WebSocket relay stays as the fallback (handoff.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.integration.conftest import TIME, WATCHGATE, text_of, upstream
from tests.integration.test_daemon import running_daemon

pytestmark = pytest.mark.integration


def stdio_of(pid: int) -> list[str]:
    return [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in (0, 1)]


async def test_attached_clients_are_served_on_their_own_pipes_and_the_relay_still_works(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config(upstream("time", TIME), upstream("clock", TIME))
    with trio.fail_after(90):
        async with running_daemon(config) as daemon, AsyncExitStack() as stack:
            sessions = []
            for name, relay in (("first", "0"), ("second", "0"), ("relayed", "1")):
                params = StdioServerParameters(
                    command=WATCHGATE,
                    args=["attach", "--no-start"],
                    env={**daemon.env, "WATCHGATE_ATTACH_RELAY": relay},
                )
                errlog = stack.enter_context((tmp_path / f"{name}.log").open("w"))
                read, write = await stack.enter_async_context(stdio_client(params, errlog=errlog))
                session = await stack.enter_async_context(ClientSession(read, write, client_info=_info(name)))
                await session.initialize()
                sessions.append(session)
            async with trio.open_nursery() as nursery:  # all at once, each gets its own answers
                results: dict[int, str] = {}

                async def ask(n: int, session: ClientSession) -> None:
                    result = await session.call_tool("time__get_current_time", {"timezone": "UTC"})
                    results[n] = text_of(result)

                for n, session in enumerate(sessions):
                    nursery.start_soon(ask, n, session)
            assert len(results) == 3 and all('"timezone": "UTC"' in text for text in results.values())

            clients = {c["name"]: c for c in (await daemon.ps())["clients"]}
            assert sorted(clients) == ["first", "relayed", "second"]
            for name in ("first", "second"):  # handed over: attach kept none of the client's pipes
                assert stdio_of(clients[name]["pid"]) == ["/dev/null", "/dev/null"]
            assert all(link.startswith("pipe:") for link in stdio_of(clients["relayed"]["pid"]))


def _info(name: str) -> object:
    from mcp import types

    return types.Implementation(name=name, version="1")
