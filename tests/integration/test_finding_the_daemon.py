"""Every client finds the one daemon, whatever environment its MCP client gives it: the official
SDK's ``stdio_client`` passes a server only HOME, LOGNAME, PATH, SHELL, TERM and USER, so a daemon
started from a desktop shell (with ``XDG_RUNTIME_DIR``) must be where such an ``attach`` looks."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.integration.conftest import TIME, WATCHGATE, text_of, upstream
from watchgate.daemon import control
from watchgate.daemon.client import call
from watchgate.daemon.paths import RUN_USER, RUNTIME_ENV, RuntimePaths
from watchgate.listeners.unix import is_listening

pytestmark = pytest.mark.integration


@pytest.mark.skipif(
    (RUN_USER / str(os.getuid())).is_dir(),
    reason="this user has a /run/user directory: the test would start a daemon in the real one",
)
async def test_the_sdks_default_environment_attaches_to_a_daemon_started_with_xdg_runtime_dir(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(upstream("time", TIME))
    home = Path(tempfile.mkdtemp(prefix="wg-", dir="/tmp"))  # short: Unix socket paths are limited
    xdg = home / "xdg"
    xdg.mkdir(mode=0o700)
    desktop = {k: v for k, v in os.environ.items() if k != RUNTIME_ENV}
    desktop.update(HOME=str(home), XDG_RUNTIME_DIR=str(xdg))
    daemon = await trio.lowlevel.open_process(
        [WATCHGATE, "up", "--foreground", "-c", str(config)],
        env=desktop,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    paths = RuntimePaths(home / ".watchgate" / "run")
    try:
        with trio.fail_after(60):
            while not await is_listening(paths.socket):
                await trio.sleep(0.05)
            # what the SDK's stdio_client passes when the client gives no env: HOME and friends
            monkeypatch.setenv("HOME", str(home))
            monkeypatch.delenv(RUNTIME_ENV, raising=False)
            monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
            params = StdioServerParameters(command=WATCHGATE, args=["attach", "--no-start"])
            with (home / "attach.log").open("w") as errlog:
                async with (
                    stdio_client(params, errlog=errlog) as (read, write),
                    ClientSession(read, write) as session,
                ):
                    await session.initialize()
                    result = await session.call_tool("get_current_time", {"timezone": "UTC"})
                    assert "UTC" in text_of(result)
            clients = await call(paths, control.Ps())
            assert [u["name"] for u in clients["upstreams"]] == ["time"]  # the one daemon, not a second
    finally:
        with trio.CancelScope(shield=True):
            if daemon.returncode is None:
                daemon.terminate()
                with trio.move_on_after(30):
                    await daemon.wait()
                if daemon.returncode is None:
                    daemon.kill()
                    await daemon.wait()
            shutil.rmtree(home, ignore_errors=True)
