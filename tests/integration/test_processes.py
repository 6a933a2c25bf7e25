"""A server's whole process tree lives and dies with it (design.md §12): its exit is seen
from the process itself, and nothing it started outlives a stop or the gateway, `kill -9` included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import trio
from mcp import MCPError

from tests.integration.conftest import CRASHY, WATCHGATE, gateway, text_of, upstream

pytestmark = pytest.mark.integration


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


async def gone(pid: int, within: float = 10) -> bool:
    with trio.move_on_after(within):
        while running(pid):
            await trio.sleep(0.05)
    return not running(pid)


async def test_a_server_that_exits_while_a_grandchild_holds_its_stdout_fails_the_call_at_once(
    write_config, tmp_path: Path
) -> None:
    config = write_config(upstream("crashy", CRASHY, request_timeout=120), upstream("other", CRASHY))
    pidfile = tmp_path / "grandchild.pid"
    async with gateway(config) as session:
        with trio.fail_after(15), pytest.raises(MCPError) as info:  # not request_timeout's 120 s
            await session.call_tool("crashy__orphan", {"pidfile": str(pidfile)})
        assert info.value.error.code == -32003 and "exited with code 5" in info.value.error.message
        grandchild = int(pidfile.read_text())
        assert await gone(grandchild), "the setsid grandchild outlived its server's incarnation"
        assert text_of(await session.call_tool("other__echo", {"text": "still here"})) == "still here"


async def test_kill_9_of_the_gateway_takes_its_servers_with_it(write_config, tmp_path: Path) -> None:
    config = write_config(upstream("stubborn", [*CRASHY, "--stubborn"]))
    with subprocess.Popen(  # noqa: ASYNC220 - the gateway's own pid is needed, to kill -9 it
        [WATCHGATE, "run", "-c", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as gw:
        assert gw.stdin is not None and gw.stdout is not None
        hello = {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        }
        for request in (
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "pid", "arguments": {}}},
        ):
            gw.stdin.write(json.dumps(request).encode() + b"\n")
            gw.stdin.flush()
            answer = json.loads(await trio.to_thread.run_sync(gw.stdout.readline))
        server = int(answer["result"]["content"][0]["text"])
        assert running(server)
        os.kill(gw.pid, signal.SIGKILL)
        gw.wait()
        assert await gone(server), "a server that ignores SIGTERM outlived kill -9 of its gateway"
