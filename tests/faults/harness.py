"""The fault-injection harness: a real gateway (``watchgate run``, or the daemon with clients on
``watchgate attach``) in front of misbehaving servers, driven by raw JSON-RPC so a test can send
anything at all."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
import yaml

from watchgate.audit import verify_log

REPO = Path(__file__).resolve().parents[2]
WATCHGATE = str(REPO / ".venv" / "bin" / "watchgate")
MISBEHAVING = str(REPO / "tests" / "servers" / "misbehaving.py")
HELLO = {
    "protocolVersion": "2025-11-25",
    "capabilities": {},
    "clientInfo": {"name": "faults", "version": "1"},
}


def server(name: str, mode: str, marker: str, **keys: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "command": [sys.executable, MISBEHAVING, mode, marker],
        "startup_timeout": 3,
        "request_timeout": 3,
        "shutdown_timeout": 1,
        "max_restarts": 2,
        "within_seconds": 60,
        "backoff": {"initial": 0.2, "max": 0.5, "jitter": 0.1},
    }
    return {**entry, **keys}


def write_config(folder: Path, *upstreams: dict[str, Any]) -> Path:
    path = folder / "faults.yaml"
    document = {
        "proxy": {"startup_wait": 5, "upstreams": list(upstreams)},
        "audit": {"path": str(folder / "audit.jsonl")},
        "logging": {"level": "warning"},
    }
    path.write_text(yaml.safe_dump(document))
    return path


@dataclass
class RawClient:
    """A client process (``watchgate run`` or ``attach``) spoken to in raw JSON-RPC lines."""

    process: trio.Process
    answers: dict[Any, list[dict[str, Any]]] = field(default_factory=dict)
    arrived: trio.Event = field(default_factory=trio.Event)
    closed: bool = False

    async def pump(self) -> None:
        assert self.process.stdout is not None
        buffer = b""
        while chunk := await self.process.stdout.receive_some(1 << 20):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                msg = json.loads(line)
                if "method" not in msg:
                    self.answers.setdefault(msg.get("id"), []).append(msg)
            self.arrived.set()
            self.arrived = trio.Event()
        self.closed = True
        self.arrived.set()

    async def send_raw(self, data: bytes) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(data)

    async def send(self, msg: dict[str, Any]) -> None:
        await self.send_raw(json.dumps(msg).encode() + b"\n")

    async def answer(self, request_id: Any, timeout: float = 30) -> dict[str, Any]:
        with trio.fail_after(timeout):
            while not self.answers.get(request_id):
                if self.closed:
                    raise AssertionError(f"the gateway closed the session before answering {request_id!r}")
                await self.arrived.wait()
        return self.answers[request_id].pop(0)

    async def request(
        self, request_id: Any, method: str, params: Any = None, timeout: float = 30
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            msg["params"] = params
        await self.send(msg)
        return await self.answer(request_id, timeout)

    async def call(
        self, request_id: Any, tool: str, arguments: Any = None, timeout: float = 30
    ) -> dict[str, Any]:
        return await self.request(
            request_id, "tools/call", {"name": tool, "arguments": arguments or {}}, timeout
        )

    async def initialize(self) -> None:
        assert "result" in await self.request("init", "initialize", HELLO)
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def close(self) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.aclose()


@dataclass
class Gateway:
    """One gateway under test; ``client()`` opens another session (the daemon only)."""

    mode: str
    folder: Path
    env: dict[str, str]
    nursery: trio.Nursery
    processes: list[trio.Process] = field(default_factory=list)

    async def client(self, *, reading: bool = True) -> RawClient:
        argv = (
            [WATCHGATE, "attach", "--no-start"]
            if self.mode == "daemon"
            else [WATCHGATE, "run", "-c", str(self.folder / "faults.yaml")]
        )
        with (self.folder / f"client-{len(self.processes)}.log").open("ab") as log:
            process = await trio.lowlevel.open_process(
                argv, env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log
            )
        self.processes.append(process)
        client = RawClient(process)
        if reading:
            self.nursery.start_soon(client.pump)
        return client

    async def alive(self) -> bool:
        """The gateway itself still runs (the daemon, or `run` while its client is attached)."""
        return all(p.returncode is None for p in self.processes[:1])

    async def cli(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return await trio.run_process(
            [WATCHGATE, *args], env=self.env, capture_stdout=True, capture_stderr=True, check=False
        )


@asynccontextmanager
async def gateway(mode: str, config: Path) -> AsyncIterator[Gateway]:
    """``run``: the first `client()` is the gateway; ``daemon``: `up --foreground` first."""
    runtime = Path(tempfile.mkdtemp(prefix="wg-f-", dir="/tmp"))
    env = {**os.environ, "WATCHGATE_RUNTIME_DIR": str(runtime), "WATCHGATE_AUTOSTART": "0"}
    try:
        async with trio.open_nursery() as nursery:
            gw = Gateway(mode, config.parent, env, nursery)
            if mode == "daemon":
                with (config.parent / "daemon.log").open("ab") as log:
                    argv = [WATCHGATE, "up", "--foreground", "-c", str(config)]
                    daemon = await trio.lowlevel.open_process(argv, env=env, stdout=log, stderr=log)
                gw.processes.append(daemon)
                with trio.fail_after(30):
                    while (await gw.cli("ps", "--json")).returncode != 0:
                        await trio.sleep(0.05)
            try:
                yield gw
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(30):
                    await _shut_down(gw)
                nursery.cancel_scope.cancel()
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


async def _shut_down(gw: Gateway) -> None:
    for process in gw.processes[1 if gw.mode == "daemon" else 0 :]:
        if process.stdin is not None:
            await process.stdin.aclose()
    if gw.mode == "daemon":
        await gw.cli("down", "--grace", "1")
    for process in gw.processes:
        with trio.move_on_after(15):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line carries ``marker`` (zombies are not alive)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() not in (entry / "cmdline").read_bytes():
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


async def none_left(marker: str, within: float = 10) -> list[int]:
    with trio.move_on_after(within):
        while processes_with(marker):
            await trio.sleep(0.05)
    return processes_with(marker)


def audit_is_complete(folder: Path) -> tuple[bool, list[dict[str, Any]]]:
    """The log verifies; its records, for the test to count."""
    log = folder / "audit.jsonl"
    records = [
        json.loads(line)
        for path in sorted(folder.glob("audit.jsonl*"))
        if not path.name.endswith(".lock")
        for line in path.read_text().splitlines()
    ]
    return verify_log(str(log)).ok, records
