"""Real clients over HTTP: the official SDK's Streamable HTTP client, both eras, against
``watchgate run --http`` and the daemon's listener, with real servers behind them."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import trio
from mcp import Client, ClientSession, types
from mcp.client.streamable_http import streamable_http_client

from tests.integration.conftest import (
    EVERYTHING,
    TIME,
    WATCHGATE,
    echoes_at_once,
    progress_and_sampling,
    text_of,
    upstream,
)
from tests.listeners.http.conftest import modern_headers, modern_request
from watchgate.bench.httpdriver import free_port

pytestmark = pytest.mark.integration

#: The SDK's Streamable HTTP client leaves httpx2's nested response generators to the garbage
#: collector when it closes a stream early (its own code, not Watchgate's): trio reports each.
_SDK_LEAVES_GENERATORS = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object "
    "(EventSource|PoolByteStream|Response)\\.:pytest.PytestUnraisableExceptionWarning"
)


@asynccontextmanager
async def gateway_over_http(config: Path, port: int, log: Path, *extra: str) -> AsyncIterator[str]:
    """``watchgate run --http 127.0.0.1:PORT``; its endpoint once it answers. On leaving it gets
    SIGTERM and must exit 0 without a traceback."""
    with log.open("w") as out:
        process = await trio.lowlevel.open_process(
            [WATCHGATE, "run", "-c", str(config), "--http", f"127.0.0.1:{port}", *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ,
        )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        with trio.fail_after(30):
            async with httpx.AsyncClient() as probe:
                while process.poll() is None:
                    try:
                        if (await probe.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await trio.sleep(0.05)
        assert process.returncode is None, f"the gateway exited while starting:\n{log.read_text()}"
        yield url
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            with trio.move_on_after(15):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, log.read_text()
    assert "Traceback" not in log.read_text()


@_SDK_LEAVES_GENERATORS
async def test_the_sdk_client_in_both_eras_through_run_http(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config(upstream("time", TIME))
    async with gateway_over_http(config, free_port(), tmp_path / "gw.log") as url:
        for mode in ("legacy", "2026-07-28", "auto"):
            async with Client(url, mode=mode) as client:  # type: ignore[arg-type]
                tools = await client.list_tools()
                assert "get_current_time" in {t.name for t in tools.tools}
                answer = await client.call_tool("get_current_time", {"timezone": "UTC"})
                assert "UTC" in text_of(answer), mode
                expected = "2025-11-25" if mode == "legacy" else "2026-07-28"
                assert client.protocol_version == expected


async def test_one_modern_client_across_two_gateway_processes(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """Nothing ties a 2026-07-28 client to one gateway: requests alternate between two
    processes on the same config (a load balancer's round robin) and every one succeeds."""
    config = write_config(upstream("time", TIME))
    async with (
        # one audit log has one writer: each process keeps its own chain (docs/deployment.md)
        gateway_over_http(
            config, free_port(), tmp_path / "a.log", "--audit-log", str(tmp_path / "a.jsonl")
        ) as first,
        gateway_over_http(
            config, free_port(), tmp_path / "b.log", "--audit-log", str(tmp_path / "b.jsonl")
        ) as second,
        httpx.AsyncClient() as http,
    ):
        calls: list[tuple[str, dict[str, Any], str | None]] = [
            ("server/discover", {}, None),
            ("tools/list", {}, None),
            (
                "tools/call",
                {"name": "get_current_time", "arguments": {"timezone": "UTC"}},
                "get_current_time",
            ),
        ] * 4
        for n, (method, params, name) in enumerate(calls):
            url = (first, second)[n % 2]
            response = await http.post(
                url, json=modern_request(n, method, params), headers=modern_headers(method, name)
            )
            assert response.status_code == 200, (url, response.text)
            body = response.text
            assert '"resultType":"complete"' in body.replace(" ", ""), body


@_SDK_LEAVES_GENERATORS
async def test_http_and_stdio_clients_share_the_daemon(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """The daemon serves its socket and HTTP side by side over the same servers: concurrent
    calls with colliding ids each get their own answer; progress and sampling reach the HTTP
    client whose call asked for them."""
    from tests.integration.test_daemon import attached, running_daemon

    async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="forty-two"), model="test-model"
        )

    port = free_port()
    config = write_config(upstream("everything", EVERYTHING), upstream("time", TIME))
    with trio.fail_after(120):
        async with (
            running_daemon(config, "--http", f"127.0.0.1:{port}") as daemon,
            attached(daemon) as local,
            streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write),
            ClientSession(read, write, sampling_callback=sample) as remote,
        ):
            await remote.initialize()
            sessions = {"stdio": local, "http": remote}
            assert await echoes_at_once(sessions, "everything__echo", 30) == []
            progress, sampled = await progress_and_sampling(remote, "everything__")
            assert progress == [1, 2, 3] and "forty-two" in sampled
            clients = (await daemon.ps())["clients"]
            assert len(clients) == 2
            assert all(u["in_flight"] == 0 for u in (await daemon.ps())["upstreams"])


@_SDK_LEAVES_GENERATORS
async def test_the_sdk_modern_client_through_the_daemon(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """The official SDK's 2026-07-28 client: a legacy server's sampling request comes back as
    input_required and the SDK's retry answers it (MRTR); progress reaches it; closing a call's
    stream cancels the call upstream."""
    from tests.integration.test_daemon import running_daemon

    async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="forty-two"), model="test-model"
        )

    progress: list[float] = []
    first_step = trio.Event()

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)
        first_step.set()

    port = free_port()
    config = write_config(upstream("everything", EVERYTHING))
    with trio.fail_after(120):
        async with (
            running_daemon(config, "--http", f"127.0.0.1:{port}") as daemon,
            Client(f"http://127.0.0.1:{port}/mcp", mode="2026-07-28", sampling_callback=sample) as client,
        ):
            sampled = await client.call_tool("trigger-sampling-request", {"prompt": "?", "maxTokens": 5})
            assert "forty-two" in text_of(sampled)
            long = {"duration": 30, "steps": 30}
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    partial(
                        client.call_tool,
                        "trigger-long-running-operation",
                        long,
                        progress_callback=on_progress,
                    )
                )
                await first_step.wait()
                nursery.cancel_scope.cancel()  # the client gives up: its stream closes
            with trio.fail_after(10):  # long before the 30 s the call would take
                while (await daemon.upstream("everything"))["in_flight"]:
                    await trio.sleep(0.05)
            assert progress and progress[0] == 1
