"""Remote servers: server-everything in its ``streamableHttp`` and ``sse`` modes (on loopback)
beside a stdio one, and a stdio server behind a WebSocket, through ``watchgate run``, driven by
the official MCP SDK."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from mcp import MCPError, types

from tests.integration.conftest import (
    REPO,
    TIME,
    Recorder,
    echoes_at_once,
    gateway,
    progress_and_sampling,
    text_of,
    upstream,
)
from watchgate.bench.httpdriver import free_port

pytestmark = pytest.mark.integration

EVERYTHING_BIN = str(REPO / "node_mcp/node_modules/.bin/mcp-server-everything")


@asynccontextmanager
async def everything_over_http(port: int, log: Path, mode: str = "streamableHttp") -> AsyncIterator[str]:
    """server-everything listening on ``port`` in ``mode`` (``streamableHttp`` or ``sse``); its URL."""
    with log.open("w") as out:
        process = await trio.lowlevel.open_process(
            [EVERYTHING_BIN, mode],
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
            yield f"http://127.0.0.1:{port}/{'mcp' if mode == 'streamableHttp' else 'sse'}"
        finally:
            process.terminate()
            with trio.move_on_after(5):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()


def _http(name: str, url: str, transport: str = "http") -> dict[str, object]:
    return {"name": name, "transport": transport, "url": url}


async def test_a_remote_server_beside_a_stdio_one(write_config: Callable[..., Path], tmp_path: Path) -> None:
    port = free_port()
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
    url = f"http://127.0.0.1:{free_port()}/mcp"  # nothing listens there
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
    port = free_port()
    config = write_config(_http("remote", f"http://127.0.0.1:{port}/mcp"), upstream("time", TIME))
    recorder = Recorder()
    with trio.fail_after(120):
        async with gateway(config, message_handler=recorder) as session:
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
            changes = recorder.methods().count("notifications/tools/list_changed")
            async with everything_over_http(port, tmp_path / "second.log"):
                await _until_it_answers(session)  # reconnected by the supervisor's backoff
                # and the client was told its tools are back
                await recorder.wait_for("notifications/tools/list_changed", count=changes + 1)


async def _until_it_answers(session: Any) -> None:
    while True:
        try:
            result = await session.call_tool("remote__echo", {"message": "up?"})
        except MCPError:
            await trio.sleep(0.2)
            continue
        assert "up?" in text_of(result)
        return


@pytest.mark.parametrize("transport", ["sse", "http"])
async def test_a_legacy_sse_server_beside_a_stdio_one(
    transport: str, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """``transport: sse``, and ``transport: http`` finding out by itself that the server only
    speaks the legacy HTTP+SSE transport."""
    port = free_port()
    with trio.fail_after(90):
        async with everything_over_http(port, tmp_path / "everything.log", mode="sse") as url:
            config = write_config(_http("old", url, transport), upstream("time", TIME))
            async with gateway(config) as session:
                answers: dict[int, str] = {}

                async def call(n: int) -> None:
                    answers[n] = text_of(await session.call_tool("old__echo", {"message": f"m{n}"}))

                async with trio.open_nursery() as nursery:
                    for n in range(20):
                        nursery.start_soon(call, n)
                assert all(f"m{n}" in answers[n] for n in range(20))
                resources = (await session.list_resources()).resources
                first = next(r for r in resources if str(r.uri).startswith("old+"))
                read = await session.read_resource(first.uri)
                assert read.contents
                answer = await session.call_tool("time__get_current_time", {"timezone": "UTC"})
                assert "UTC" in text_of(answer)


async def test_through_the_daemon_two_clients_share_a_remote_server(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """A remote server behind the daemon: 100 concurrent calls from two clients each get their
    own answer; progress, sampling and elicitation reach the client whose call asked for them."""
    from tests.integration.test_daemon import attached, running_daemon

    asked: list[str] = []

    async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        asked.append("sampling")
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="forty-two"), model="test-model"
        )

    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append("elicitation")
        return types.ElicitResult(action="decline")

    port = free_port()
    with trio.fail_after(120):
        async with everything_over_http(port, tmp_path / "everything.log") as url:
            config = write_config(_http("remote", url), upstream("time", TIME))
            async with (
                running_daemon(config) as daemon,
                attached(daemon, sampling_callback=sample, elicitation_callback=elicit) as first,
                attached(daemon) as second,
            ):
                assert (await daemon.upstream("remote"))["host"] == f"127.0.0.1:{port}"
                assert await echoes_at_once({"a": first, "b": second}, "remote__echo", 50) == []
                progress, sampled = await progress_and_sampling(first, "remote__")
                assert progress == [1, 2, 3] and "forty-two" in sampled
                await first.call_tool("remote__trigger-elicitation-request", {})
                assert asked == ["sampling", "elicitation"]
                assert all(u["in_flight"] == 0 for u in (await daemon.ps())["upstreams"])
