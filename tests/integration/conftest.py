"""Integration harness: the real ``watchgate run`` as a subprocess, driven by the official MCP SDK."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

REPO = Path(__file__).resolve().parents[2]
WATCHGATE = str(REPO / ".venv" / "bin" / "watchgate")
EVERYTHING = [str(REPO / "node_mcp/node_modules/.bin/mcp-server-everything"), "stdio"]
FILESYSTEM = str(REPO / "node_mcp/node_modules/.bin/mcp-server-filesystem")
TIME = [str(REPO / ".venv/bin/mcp-server-time"), "--local-timezone", "UTC"]
CRASHY = [sys.executable, str(REPO / "tests/servers/crashy.py")]

pytestmark = pytest.mark.integration


def upstream(name: str | None, command: list[str], **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"command": command, **extra}
    if name is not None:
        entry["name"] = name
    return entry


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    def write(*upstreams: dict[str, Any], startup_wait: float = 20, level: str = "info") -> Path:
        path = tmp_path / "watchgate.yaml"
        proxy: dict[str, Any] = {"startup_wait": startup_wait, "upstreams": list(upstreams)}
        path.write_text(yaml.safe_dump({"proxy": proxy, "logging": {"level": level}}))
        return path

    return write


class Recorder:
    """Collects what the gateway sends the client besides responses."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self._changed = trio.Event()

    async def __call__(self, message: Any) -> None:
        self.messages.append(message)
        self._changed.set()
        self._changed = trio.Event()

    def methods(self) -> list[str]:
        return [getattr(getattr(m, "root", m), "method", type(m).__name__) for m in self.messages]

    async def wait_for(self, method: str, count: int = 1, timeout: float = 30) -> None:
        with trio.fail_after(timeout):
            while self.methods().count(method) < count:
                await self._changed.wait()


@asynccontextmanager
async def gateway(
    config: Path, stderr: Path | None = None, **session_kwargs: Any
) -> AsyncIterator[ClientSession]:
    """An initialized SDK session to ``watchgate run -c config``; the gateway's stderr goes to a file."""
    # the SDK passes only a minimal environment by default; coverage needs its variables in the child
    params = StdioServerParameters(command=WATCHGATE, args=["run", "-c", str(config)], env=dict(os.environ))
    errlog_path = stderr or config.with_suffix(".stderr.log")
    with errlog_path.open("w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write, **session_kwargs) as session,
        ):
            await session.initialize()
            yield session


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def echoes_at_once(sessions: dict[str, ClientSession], tool: str, calls: int) -> list[str]:
    """``calls`` echo calls from every session at once (each session's messages its own); the
    answers that came back to the wrong caller or wrong (empty when every one is right)."""
    wrong: list[str] = []

    async def call(session: ClientSession, message: str) -> None:
        answer = text_of(await session.call_tool(tool, {"message": message}))
        if answer != f"Echo: {message}":
            wrong.append(f"{message} got {answer}")

    async with trio.open_nursery() as nursery:
        for n in range(calls):
            for name, session in sessions.items():
                nursery.start_soon(call, session, f"{name}-{n}")
    return wrong


async def progress_and_sampling(session: ClientSession, prefix: str) -> tuple[list[float], str]:
    """server-everything's long operation (3 steps) and sampling request through ``session``
    (its sampling callback answers): the progress it saw, and what the sampled call said."""
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    await session.call_tool(
        f"{prefix}trigger-long-running-operation",
        {"duration": 0.3, "steps": 3},
        progress_callback=on_progress,
    )
    sampled = await session.call_tool(f"{prefix}trigger-sampling-request", {"prompt": "?", "maxTokens": 5})
    return progress, text_of(sampled)
