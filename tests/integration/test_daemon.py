"""The daemon end to end: ``watchgate up --foreground`` as a process, official-SDK clients through
``watchgate attach``, the control commands as a user runs them, and the OS as the witness."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client

from tests.integration.conftest import CRASHY, EVERYTHING, TIME, WATCHGATE, text_of, upstream
from watchgate.daemon import control
from watchgate.daemon.client import call
from watchgate.daemon.paths import RuntimePaths
from watchgate.listeners.unix import is_listening

pytestmark = pytest.mark.integration


@dataclass
class DaemonHandle:
    process: trio.Process
    paths: RuntimePaths
    env: dict[str, str]
    log: Path

    async def ps(self) -> dict[str, Any]:
        report = await call(self.paths, control.Ps())
        assert isinstance(report, dict)
        return report

    async def upstream(self, name: str) -> dict[str, Any]:
        return next(u for u in (await self.ps())["upstreams"] if u["name"] == name)

    async def raw_attach(self, **options: Any) -> trio.Process:
        """`watchgate attach` on pipes, for a test that speaks raw JSON-RPC."""
        return await trio.lowlevel.open_process(
            [WATCHGATE, "attach", "--no-start"],
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            **options,
        )

    async def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The command as a user runs it; output decoded."""
        done = await trio.run_process(
            [WATCHGATE, *args], env=self.env, capture_stdout=True, capture_stderr=True, check=False
        )
        return subprocess.CompletedProcess(
            done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
        )


@contextlib.asynccontextmanager
async def running_daemon(config: Path, *extra: str) -> AsyncIterator[DaemonHandle]:
    runtime = Path(tempfile.mkdtemp(prefix="wg-", dir="/tmp"))  # short: Unix socket paths are limited
    env = {**os.environ, "WATCHGATE_RUNTIME_DIR": str(runtime)}
    log = config.with_suffix(".daemon.log")
    paths = RuntimePaths(runtime)
    with log.open("wb") as sink:
        process = await trio.lowlevel.open_process(
            [WATCHGATE, "up", "--foreground", "-c", str(config), *extra], env=env, stdout=sink, stderr=sink
        )
    try:
        with trio.fail_after(60):
            while not await is_listening(paths.socket):
                await trio.sleep(0.05)
            await call(paths, control.Ps())  # answered once the tree has started
        yield DaemonHandle(process, paths, env, log)
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                with contextlib.suppress(Exception):
                    await call(paths, control.Down(grace=1))
                with trio.move_on_after(30):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            shutil.rmtree(runtime, ignore_errors=True)


@contextlib.asynccontextmanager
async def attached(handle: DaemonHandle, **session_kwargs: Any) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=WATCHGATE, args=["attach", "--no-start"], env=handle.env)
    with (handle.log.parent / "attach.log").open("a") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write, **session_kwargs) as session,
        ):
            await session.initialize()
            yield session


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


async def test_three_clients_share_upstreams_and_get_only_their_own_replies(
    write_config: Callable[..., Path],
) -> None:
    config = write_config(upstream("everything", EVERYTHING), upstream("time", TIME))
    with trio.fail_after(120):
        async with running_daemon(config) as daemon:
            mismatches: list[str] = []

            async def client(label: str) -> None:
                async with attached(daemon) as session, trio.open_nursery() as nursery:
                    for n in range(100):
                        nursery.start_soon(one_call, session, f"{label}-{n}")

            async def one_call(session: ClientSession, message: str) -> None:
                result = await session.call_tool("everything__echo", {"message": message})
                if text_of(result) != f"Echo: {message}":
                    mismatches.append(f"{message} got {text_of(result)}")

            async with trio.open_nursery() as nursery:
                for label in ("a", "b", "c"):
                    nursery.start_soon(client, label)
            assert mismatches == []
            report = await daemon.ps()
            assert all(u["in_flight"] == 0 for u in report["upstreams"])


async def test_ps_follows_a_killed_upstream_and_leaves_the_others_alone(
    write_config: Callable[..., Path],
) -> None:
    config = write_config(
        upstream("crashy", CRASHY, backoff={"initial": 1.0, "max": 1.0, "jitter": 0}),
        upstream("time", TIME),
    )
    with trio.fail_after(90):
        async with running_daemon(config) as daemon:
            before = await daemon.upstream("crashy")
            time_before = await daemon.upstream("time")
            assert before["state"] == "running" and before["restarts"] == 0

            os.kill(before["pid"], signal.SIGKILL)
            states = set()
            while (row := await daemon.upstream("crashy"))["restarts"] < 1 or row["state"] != "running":
                states.add(row["state"])
                await trio.sleep(0.05)
            assert "backoff" in states
            assert row["pid"] != before["pid"] and "killed by SIGKILL" in (row["last_error"] or "")

            time_after = await daemon.upstream("time")
            assert time_after["pid"] == time_before["pid"] and time_after["restarts"] == 0
            assert time_after["uptime"] > time_before["uptime"]

            listing = await daemon.cli("ps", "--json")
            assert listing.returncode == 0
            assert {u["name"] for u in json.loads(listing.stdout)["upstreams"]} == {"crashy", "time"}
            table = await daemon.cli("ps")
            assert table.stdout.splitlines()[0].split()[:3] == ["NAME", "TRANSPORT", "STATE"]


async def test_restart_brings_back_a_failed_server_and_unknown_names_are_refused(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    broken = tmp_path / "credentials-missing"
    broken.touch()
    config = write_config(
        upstream(
            "flaky", [*CRASHY, "--fail-start-if", str(broken)], max_restarts=1, backoff={"initial": 0.1}
        ),
        upstream("time", TIME),
    )
    with trio.fail_after(90):
        async with running_daemon(config) as daemon:
            while (await daemon.upstream("flaky"))["state"] != "failed":
                await trio.sleep(0.05)
            row = await daemon.upstream("flaky")
            assert "missing credentials" in row["last_error"]

            broken.unlink()
            restarted = await daemon.cli("restart", "flaky")
            assert restarted.returncode == 0 and restarted.stdout.strip() == "flaky: running"
            assert (await daemon.upstream("flaky"))["state"] == "running"

            unknown = await daemon.cli("restart", "nope")
            assert unknown.returncode == 1
            assert "unknown server 'nope' (known: flaky, time)" in unknown.stderr
            assert "Traceback" not in unknown.stderr

            logs = await daemon.cli("logs", "flaky", "-n", "50")
            assert "missing credentials" in logs.stdout and "event: started" in logs.stdout


async def test_a_client_that_vanishes_mid_call_is_cancelled_upstream(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    record = tmp_path / "received.jsonl"
    config = write_config(upstream("slowpoke", [*CRASHY, "--record", str(record)]), upstream("time", TIME))
    with trio.fail_after(90):
        async with running_daemon(config) as daemon:
            attach = await daemon.raw_attach()
            assert attach.stdin is not None
            lines = [
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-11-25",
                        "capabilities": {},
                        "clientInfo": {"name": "doomed", "version": "1"},
                    },
                },
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "tools/call",
                    "params": {"name": "slowpoke__slow", "arguments": {"seconds": 60}},
                },
            ]
            await attach.stdin.send_all(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
            while (await daemon.upstream("slowpoke"))["in_flight"] != 1:
                await trio.sleep(0.05)
            clients = (await daemon.ps())["clients"]
            assert [c["name"] for c in clients] == ["doomed"] and clients[0]["in_flight"] == 1

            # the client dies: its pipes close (attach handed them to the daemon, which sees the
            # end of the client's stdin), and its attach process goes with it
            await attach.stdin.aclose()
            assert attach.stdout is not None
            await attach.stdout.aclose()
            attach.kill()
            await attach.wait()
            while '"notifications/cancelled"' not in record.read_text():
                await trio.sleep(0.05)
            cancel = next(json.loads(line) for line in record.read_text().splitlines() if "cancelled" in line)
            call_line = next(
                json.loads(line)
                for line in record.read_text().splitlines()
                if "slowpoke" not in line and '"slow"' in line
            )
            assert cancel["params"]["requestId"] == call_line["id"]
            while (report := await daemon.ps())["clients"]:  # the session ends right after its cancels
                await trio.sleep(0.05)
            assert all(u["in_flight"] == 0 for u in report["upstreams"])
            assert all(u["state"] == "running" for u in report["upstreams"])


async def test_down_leaves_no_process_no_socket_no_pid_file(write_config: Callable[..., Path]) -> None:
    config = write_config(
        upstream("everything", EVERYTHING), upstream("time", TIME), upstream("crashy", CRASHY)
    )
    with trio.fail_after(90):
        async with running_daemon(config) as daemon:
            report = await daemon.ps()
            pids = [u["pid"] for u in report["upstreams"]] + [report["pid"]]
            assert all(_alive(pid) for pid in pids)
            stopped = await daemon.cli("down")
            assert stopped.returncode == 0 and "daemon stopped" in stopped.stdout
            await daemon.process.wait()
            assert not daemon.paths.socket.exists() and not daemon.paths.pid_file.exists()
            assert [pid for pid in pids if _alive(pid)] == []
            # node servers run as children of npm-style launchers: nothing of theirs may survive either
            survivors = await trio.run_process(
                ["pgrep", "-f", str(config.parent)], capture_stdout=True, check=False
            )
            assert survivors.stdout.decode().strip() == ""
            after = await daemon.cli("ps")
            assert after.returncode == 1 and "no Watchgate daemon is running" in after.stderr


_CONNECT_AS_NOBODY = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    s.sendall(
        b"GET /control HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n"
    )
    data = s.recv(100)
except PermissionError:
    print("no permission")
except (BrokenPipeError, ConnectionResetError):
    print("closed")
else:
    print("closed" if data == b"" else "refused: 403" if data.startswith(b"HTTP/1.1 403") else "answered")
"""


async def _connect_as_nobody(socket_path: Path) -> str:
    # the system interpreter: another uid cannot enter the venv under root's home
    interpreter = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    result = await trio.run_process(
        [interpreter, "-c", _CONNECT_AS_NOBODY, str(socket_path)],
        user=65534,
        capture_stdout=True,
        check=False,
    )
    return result.stdout.decode().strip()


async def test_the_socket_is_private(write_config: Callable[..., Path]) -> None:
    config = write_config(upstream("time", TIME))
    async with running_daemon(config) as daemon:
        assert daemon.paths.socket.stat().st_mode & 0o777 == 0o600
        assert daemon.paths.directory.stat().st_mode & 0o777 == 0o700
        if os.getuid() != 0:
            pytest.skip("switching to another uid needs root; the 0600 socket is checked above")
        assert await _connect_as_nobody(daemon.paths.socket) == "no permission"
        # defence in depth: with the permissions opened up, the daemon itself refuses the peer
        daemon.paths.directory.chmod(0o711)
        daemon.paths.socket.chmod(0o666)
        assert await _connect_as_nobody(daemon.paths.socket) == "refused: 403"  # told, not left hanging
        assert "refused a connection from uid 65534" in daemon.log.read_text()
        daemon.paths.directory.chmod(0o700)  # ours again: the commands accept the directory
        assert (await daemon.ps())["upstreams"][0]["state"] == "running"


async def test_sampling_reaches_the_calling_client_and_its_answer_flows_back(
    write_config: Callable[..., Path],
) -> None:
    config = write_config(upstream("everything", EVERYTHING), upstream("time", TIME))
    asked: list[str] = []

    async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        asked.append(params.messages[0].content.text)  # type: ignore[union-attr]
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="forty-two"), model="test-model"
        )

    with trio.fail_after(90):
        async with running_daemon(config) as daemon, attached(daemon, sampling_callback=sample) as session:
            names = {t.name for t in (await session.list_tools()).tools}
            assert "everything__trigger-sampling-request" in names
            result = await session.call_tool(
                "everything__trigger-sampling-request", {"prompt": "the answer?", "maxTokens": 10}
            )
    assert asked and "the answer?" in asked[0]
    assert "forty-two" in text_of(result)


async def test_reload_starts_added_servers_and_leaves_the_others_running(
    write_config: Callable[..., Path],
) -> None:
    config = write_config(upstream("time", TIME), upstream("crashy", CRASHY))
    with trio.fail_after(90):
        async with running_daemon(config) as daemon:
            time_pid = (await daemon.upstream("time"))["pid"]
            write_config(upstream("time", TIME), upstream("echo", CRASHY))
            reloaded = await daemon.cli("reload")
            assert reloaded.returncode == 0, reloaded.stderr
            assert "added: echo" in reloaded.stdout and "removed: crashy" in reloaded.stdout
            assert "unchanged: time" in reloaded.stdout
            while (await daemon.upstream("echo"))["state"] != "running":
                await trio.sleep(0.05)
            assert [u["name"] for u in (await daemon.ps())["upstreams"]] == ["time", "echo"]
            assert (await daemon.upstream("time"))["pid"] == time_pid


async def test_down_answers_an_attached_clients_call_and_attach_exits_1(
    write_config: Callable[..., Path],
) -> None:
    config = write_config(upstream("crashy", CRASHY), upstream("time", TIME))
    with trio.fail_after(90):
        async with running_daemon(config) as daemon:
            client = await daemon.raw_attach(stderr=subprocess.PIPE)
            assert client.stdin is not None and client.stdout is not None and client.stderr is not None
            slow = {"name": "crashy__slow", "arguments": {"seconds": 600}}
            await client.stdin.send_all(
                json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": slow}).encode()
                + b"\n"
            )
            while (await daemon.upstream("crashy"))["in_flight"] == 0:
                await trio.sleep(0.05)
            assert (await daemon.cli("down", "--grace", "1")).returncode == 0
            out = b""
            while chunk := await client.stdout.receive_some():
                out += chunk
            answer = json.loads(out.splitlines()[0])
            assert answer["id"] == 1 and answer["error"]["code"] == -32003
            assert "shutting down" in answer["error"]["message"]
            assert await client.wait() == 1
            err = (await client.stderr.receive_some()).decode()
            assert (
                err.strip()
                == "watchgate: the Watchgate daemon ended this session (it stopped or was shut down)"
            )
            await client.stdin.aclose()
