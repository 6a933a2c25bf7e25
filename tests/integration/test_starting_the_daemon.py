"""Starting the daemon from the command line: ``attach`` starting one on demand keeps its stdout
for the protocol alone, and a detached ``up`` that fails says why with this run's words only."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx2 as httpx
import pytest
import trio

from tests.integration.conftest import TIME, WATCHGATE, upstream
from watchgate.bench.httpdriver import free_port
from watchgate.daemon import control
from watchgate.daemon.client import call
from watchgate.daemon.paths import RUNTIME_ENV, RuntimePaths

pytestmark = pytest.mark.integration


def _initialize(client: str, version: str = "1") -> dict[str, object]:
    info = {"name": client, "version": version}
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": info}
    return {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}


def _runtime() -> tuple[Path, dict[str, str]]:
    runtime = Path(tempfile.mkdtemp(prefix="wg-", dir="/tmp"))  # short: Unix socket paths are limited
    return runtime, {**os.environ, RUNTIME_ENV: str(runtime)}


async def _stop(runtime: Path) -> None:
    """The daemon a test started, stopped (``down``), and its runtime directory gone."""
    with trio.CancelScope(shield=True):
        paths = RuntimePaths(runtime)
        if paths.socket.exists():
            await call(paths, control.Down(grace=1))
            with trio.move_on_after(30):
                while paths.pid_file.exists():  # the daemon removes it last
                    await trio.sleep(0.05)
        shutil.rmtree(runtime, ignore_errors=True)


async def test_attach_starting_the_daemon_writes_only_protocol_on_stdout(
    write_config: Callable[..., Path],
) -> None:
    config = write_config(upstream("time", TIME))
    runtime, env = _runtime()
    try:
        with trio.fail_after(90):
            process = await trio.lowlevel.open_process(
                [WATCHGATE, "attach", "-c", str(config)],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert process.stdin is not None and process.stdout is not None and process.stderr is not None
            await process.stdin.send_all((json.dumps(_initialize("t")) + "\n").encode())
            out = b""
            while b"\n" not in out:  # the first thing on stdout: the initialize answer
                out += await process.stdout.receive_some(65536)
            await process.stdin.aclose()
            while chunk := await process.stdout.receive_some(65536):
                out += chunk
            err = b""
            while chunk := await process.stderr.receive_some(65536):
                err += chunk
            await process.wait()
        lines = out.decode().splitlines()
        assert all(json.loads(line)["jsonrpc"] == "2.0" for line in lines), out
        assert json.loads(lines[0])["id"] == 1
        assert "watchgate: daemon started" in err.decode()
    finally:
        await _stop(runtime)


async def test_a_failed_detached_up_shows_this_runs_reason_not_an_earlier_daemons_lines(
    tmp_path: Path,
) -> None:
    runtime, env = _runtime()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    config = tmp_path / "busy.yaml"
    config.write_text(
        f"proxy:\n  transport: http\n  http: {{listen: '127.0.0.1:{port}'}}\n"
        "  upstreams:\n    - {name: a, command: [cat]}\naudit: {enabled: false}\n"
    )
    try:
        (runtime / "watchgate.log").write_text("2026-01-01 ERROR an earlier daemon's last words\n")
        (runtime / "watchgate.log").chmod(0o600)
        done = await trio.run_process(
            [WATCHGATE, "up", "-c", str(config)],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        err = done.stderr.decode()
        assert done.returncode == 1 and "the daemon exited while starting" in err
        assert f"127.0.0.1:{port}" in err and "earlier daemon" not in err
    finally:
        taken.close()
        shutil.rmtree(runtime, ignore_errors=True)


async def test_up_with_http_says_where_and_ps_shows_http_clients(write_config: Callable[..., Path]) -> None:
    config = write_config(upstream("time", TIME))
    runtime, env = _runtime()
    port = free_port()
    try:
        with trio.fail_after(90):
            up = await trio.run_process(
                [WATCHGATE, "up", "-c", str(config), "--http", f"127.0.0.1:{port}"],
                env=env,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
            url = f"http://127.0.0.1:{port}/mcp"
            assert up.returncode == 0 and f"watchgate: MCP over HTTP at {url}\n" in up.stdout.decode()
            async with httpx.AsyncClient() as http:
                answer = await http.post(
                    url,
                    json=_initialize("web", "2"),
                    headers={"Accept": "application/json, text/event-stream"},
                )
                assert answer.status_code == 200
                ps = await trio.run_process(
                    [WATCHGATE, "ps", "--clients"], env=env, capture_stdout=True, check=False
                )
                table = ps.stdout.decode()
                assert "PID/ADDRESS" in table and "web 2" in table and "127.0.0.1:" in table
                ps = await trio.run_process([WATCHGATE, "ps"], env=env, capture_stdout=True, check=False)
                assert f"http: {url}\n" in ps.stdout.decode()
    finally:
        await _stop(runtime)
