"""``transport: http``: a remote server over Streamable HTTP (server-everything in its
``streamableHttp`` mode, on loopback) beside a stdio one, through ``watchgate run``, driven by
the official MCP SDK."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from mcp import MCPError

from tests.integration.conftest import REPO, TIME, gateway, text_of, upstream

pytestmark = pytest.mark.integration

EVERYTHING_BIN = str(REPO / "node_mcp/node_modules/.bin/mcp-server-everything")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def everything_over_http(port: int, log: Path) -> AsyncIterator[str]:
    """server-everything listening for Streamable HTTP on ``port``; its URL."""
    with log.open("w") as out:
        process = await trio.lowlevel.open_process(
            [EVERYTHING_BIN, "streamableHttp"],
            env={**os.environ, "PORT": str(port)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            with trio.fail_after(30):
                while True:
                    try:
                        stream = await trio.open_tcp_stream("127.0.0.1", port)
                    except OSError:
                        await trio.sleep(0.05)
                        continue
                    await stream.aclose()
                    break
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            process.terminate()
            with trio.move_on_after(5):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()


def _http(name: str, url: str) -> dict[str, object]:
    return {"name": name, "transport": "http", "url": url}


async def test_a_remote_server_beside_a_stdio_one(write_config: Callable[..., Path], tmp_path: Path) -> None:
    port = _free_port()
    with trio.fail_after(90):
        async with everything_over_http(port, tmp_path / "everything.log") as url:
            config = write_config(_http("remote", url), upstream("time", TIME))
            async with gateway(config) as session:
                names = {tool.name for tool in (await session.list_tools()).tools}
                assert {"remote__echo", "time__get_current_time"} <= names
                result = await session.call_tool("remote__echo", {"message": "over http"})
                assert "over http" in text_of(result)

                async def call(n: int, into: dict[int, str]) -> None:
                    into[n] = text_of(await session.call_tool("remote__echo", {"message": f"m{n}"}))

                answers: dict[int, str] = {}
                async with trio.open_nursery() as nursery:
                    for n in range(20):
                        nursery.start_soon(call, n, answers)
                assert all(f"m{n}" in answers[n] for n in range(20))  # each call got its own answer
                prompts = {prompt.name for prompt in (await session.list_prompts()).prompts}
                assert any(name.startswith("remote__") for name in prompts)


async def test_a_remote_server_that_is_gone_is_named_and_does_not_disturb_the_rest(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{_free_port()}/mcp"  # nothing listens there
    config = write_config(_http("remote", url), upstream("time", TIME), startup_wait=5)
    with trio.fail_after(60):
        async with gateway(config) as session:
            with pytest.raises(MCPError) as info:
                await session.call_tool("remote__echo", {"message": "x"})
            assert "remote" in str(info.value) and "cannot reach 127.0.0.1" in str(info.value)
            answer = await session.call_tool("time__get_current_time", {"timezone": "UTC"})
            assert "UTC" in text_of(answer)


async def test_a_remote_server_killed_mid_call_and_brought_back(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """The call in flight fails at once naming the server, the stdio server is not disturbed,
    and once the remote server listens again on the same port its tools work again."""
    port = _free_port()
    config = write_config(_http("remote", f"http://127.0.0.1:{port}/mcp"), upstream("time", TIME))
    with trio.fail_after(120):
        async with gateway(config) as session:
            failed: list[str] = []

            async def long_call() -> None:
                with pytest.raises(MCPError) as info:
                    await session.call_tool(
                        "remote__trigger-long-running-operation", {"duration": 30, "steps": 30}
                    )
                failed.append(str(info.value))

            async with trio.open_nursery() as nursery:
                async with everything_over_http(port, tmp_path / "first.log"):
                    await _until_it_answers(session)
                    nursery.start_soon(long_call)
                    await trio.sleep(1)  # the call is in flight on the remote server
                # the server is killed here: the call in flight must end now, not in 30 s
                with trio.fail_after(10):
                    while not failed:
                        await trio.sleep(0.05)
            assert failed and "remote" in failed[0]
            answer = await session.call_tool("time__get_current_time", {"timezone": "UTC"})
            assert "UTC" in text_of(answer)
            async with everything_over_http(port, tmp_path / "second.log"):
                await _until_it_answers(session)  # reconnected by the supervisor's backoff


async def _until_it_answers(session: Any) -> None:
    while True:
        try:
            result = await session.call_tool("remote__echo", {"message": "up?"})
        except MCPError:
            await trio.sleep(0.2)
            continue
        assert "up?" in text_of(result)
        return
