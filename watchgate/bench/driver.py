"""A raw JSON-RPC client over a child's stdio, cheap enough to measure microseconds.

The MCP SDK costs more per call than the gateway we want to measure, so the benchmark talks
newline-delimited JSON-RPC itself: requests are pre-encoded byte templates, responses are decoded
once with msgspec into a struct whose ``result`` stays ``Raw``, and pipes are read in 64 KiB
chunks (below malloc's mmap threshold, so a read never costs an mmap/munmap pair). The driver is
the same code in every arm, so whatever it costs is paid equally by "direct" and "gateway".

Every child is spawned in its own process group and always reaped by :func:`reap`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import trio
from msgspec import UNSET, Raw, UnsetType

from watchgate import __version__

PROTOCOL_VERSION = "2025-11-25"
CHUNK = 65536
#: What may be unread in the child's stdin at once: below one pipe buffer, so a child blocked
#: writing a response to us can never also block us writing a request to it (deadlock).
MAX_WINDOW_BYTES = 48 * 1024


class BenchError(Exception):
    """A measurement could not be made honestly (an error response, a dead child, a bad setup)."""


class _Incoming(msgspec.Struct):
    id: int | str | UnsetType | None = UNSET
    method: str | UnsetType = UNSET
    result: Raw | UnsetType = UNSET
    error: Raw | UnsetType = UNSET


_decode = msgspec.json.Decoder(_Incoming).decode
_encode = msgspec.json.Encoder().encode


class ClientSession:
    """An MCP client session as the measurements see it: lines out, lines in. The protocol
    (requests, the handshake, answering the peer) is here once; a transport gives `send` and
    `receive_lines` (`Connection` over a child's stdio, `bench.httpdriver` over HTTP)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._ids = 0

    def stderr_tail(self, lines: int = 5) -> str:
        """What the process behind the session last said, to explain a failure ("" unknown)."""
        return ""

    async def send(self, data: bytes) -> None:
        """One or more newline-terminated messages."""
        raise NotImplementedError

    async def receive_lines(self) -> list[bytes]:
        """Every message that has arrived: at least one."""
        raise NotImplementedError

    async def answer_peer_request(self, msg: _Incoming) -> None:
        """A server-to-client request (``ping``, ``roots/list`` ...): answer so the peer never waits."""
        if msg.method == "ping":
            reply: dict[str, Any] = {"jsonrpc": "2.0", "id": msg.id, "result": {}}
        else:
            error = {"code": -32601, "message": f"benchmark client does not implement {msg.method}"}
            reply = {"jsonrpc": "2.0", "id": msg.id, "error": error}
        await self.send(_encode(reply) + b"\n")

    async def request(self, method: str, params: Any = None, timeout: float = 60) -> Raw:
        """One request, waiting for its own response; other traffic is skipped or answered."""
        self._ids += 1
        request_id = f"bench-{self._ids}"
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(_encode(message) + b"\n")
        with trio.fail_after(timeout):
            while True:
                for line in await self.receive_lines():
                    msg = _decode(line)
                    if msg.method is not UNSET:
                        if msg.id is not UNSET:
                            await self.answer_peer_request(msg)
                        continue
                    if msg.id != request_id:
                        continue
                    if msg.error is not UNSET:
                        raise BenchError(f"{self.name}: {method} failed: {bytes(msg.error).decode()}")
                    assert not isinstance(msg.result, UnsetType)
                    return msg.result

    async def notify(self, method: str) -> None:
        await self.send(_encode({"jsonrpc": "2.0", "method": method}) + b"\n")

    async def initialize(self, timeout: float = 60) -> Raw:
        params = {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "watchgate-bench", "version": __version__},
        }
        result = await self.request("initialize", params, timeout=timeout)
        await self.notify("notifications/initialized")
        return result

    async def tool_names(self) -> list[str]:
        body = msgspec.json.decode(await self.request("tools/list"))
        return [str(tool["name"]) for tool in body.get("tools", [])]


class Connection(ClientSession):
    """One child process speaking MCP on its stdio, seen from the client side."""

    def __init__(self, name: str, process: trio.Process, stderr_path: Path) -> None:
        super().__init__(name)
        self.process = process
        self.stderr_path = stderr_path
        assert process.stdin is not None
        assert process.stdout is not None
        self._stdin = process.stdin
        self._stdout = process.stdout
        self._pending: list[bytes] = []

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr_tail(self, lines: int = 5) -> str:
        """The last lines the child wrote to stderr, to explain a failure."""
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    async def send(self, data: bytes) -> None:
        try:
            await self._stdin.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise BenchError(f"{self.name}: stdin closed ({self.stderr_tail()})") from exc

    async def receive_lines(self) -> list[bytes]:
        """Every complete line from the next read(s): at least one."""
        while True:
            chunk = bytes(await self._stdout.receive_some(CHUNK))  # os.read gives bytes: no copy
            if not chunk:
                with trio.move_on_after(2):  # stdout can close a moment before the exit is seen
                    await self.process.wait()
                code = self.process.poll()
                raise BenchError(f"{self.name}: stdout closed (exit {code}; stderr: {self.stderr_tail()})")
            if b"\n" not in chunk:
                self._pending.append(chunk)
                continue
            parts = chunk.split(b"\n")
            if self._pending:
                parts[0] = b"".join([*self._pending, parts[0]])
                self._pending.clear()
            tail = parts.pop()
            if tail:
                self._pending.append(tail)
            return [part for part in parts if part.strip()]


def call_template(tool: str, arguments: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """The bytes of a ``tools/call`` before and after its id: the id is the only thing that varies."""
    params = _encode({"name": tool, "arguments": arguments})
    return b'{"jsonrpc":"2.0","id":', b',"method":"tools/call","params":' + params + b"}\n"


async def run_window(
    conn: ClientSession, template: tuple[bytes, bytes], n: int, window: int
) -> tuple[int, list[int]]:
    """``n`` calls with ``window`` outstanding at once on one connection (pipelined).

    Returns the elapsed nanoseconds from the first send to the last response and each call's
    latency in nanoseconds. Any error response fails the measurement: a fast error is not a call.
    """
    prefix, suffix = template
    if window * (len(prefix) + len(suffix) + 12) > MAX_WINDOW_BYTES:
        raise BenchError(
            f"{window} outstanding requests of {len(prefix) + len(suffix)} bytes would overfill the pipe; "
            "lower the concurrency or the size of the arguments"
        )
    sent_at = [0] * n
    latencies: list[int] = []
    clock = time.perf_counter_ns
    next_id = min(window, n)
    batch = [b"%s%d%s" % (prefix, i, suffix) for i in range(next_id)]
    start = clock()
    for i in range(next_id):
        sent_at[i] = start
    await conn.send(b"".join(batch))
    while len(latencies) < n:
        lines = await conn.receive_lines()
        now = clock()
        batch.clear()
        for line in lines:
            msg = _decode(line)
            if msg.method is not UNSET:  # a notification or a server-to-client request
                if msg.id is not UNSET:
                    await conn.answer_peer_request(msg)
                continue
            if msg.error is not UNSET:
                raise BenchError(f"{conn.name}: tools/call failed: {bytes(msg.error).decode()[:300]}")
            if not isinstance(msg.id, int) or not 0 <= msg.id < n:
                continue  # an answer to a request made outside this window
            latencies.append(now - sent_at[msg.id])
            if next_id < n:
                batch.append(b"%s%d%s" % (prefix, next_id, suffix))
                next_id += 1
        if batch:
            sent = clock()
            for i in range(next_id - len(batch), next_id):
                sent_at[i] = sent
            await conn.send(b"".join(batch))
    return clock() - start, latencies


def rss_kib(pid: int) -> int:
    """VmRSS of one process (not its children), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(pid, sig)


async def reap(process: trio.Process, grace: float = 5.0, *, term_first: bool = False) -> None:
    """Close stdin and wait; then SIGTERM the group and wait; then SIGKILL; always ``wait()``.

    ``term_first`` skips the wait after closing stdin, for a daemon that does not read it.
    Shielded, so a cancelled benchmark still leaves no child and no zombie behind.
    """
    with trio.CancelScope(shield=True):
        if process.stdin is not None:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await process.stdin.aclose()
        steps = (signal.SIGTERM, signal.SIGKILL) if term_first else (None, signal.SIGTERM, signal.SIGKILL)
        for sig in steps:
            if sig is not None:
                _signal_group(process.pid, sig)
            with trio.move_on_after(grace):
                await process.wait()
                break
        await process.wait()
        if process.stdout is not None:
            await process.stdout.aclose()


@asynccontextmanager
async def spawn(
    name: str,
    argv: Sequence[str],
    workdir: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    term_first: bool = False,
) -> AsyncIterator[Connection]:
    """Start ``argv`` with piped stdin/stdout (stderr to a file in ``workdir``); reap it on exit."""
    stderr_path = workdir / f"{name.replace('/', '_')}.{time.monotonic_ns()}.stderr"
    full_env = {**os.environ, **env} if env else None
    with stderr_path.open("wb") as stderr:
        try:
            process = await trio.lowlevel.open_process(
                list(argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=full_env,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise BenchError(f"{name}: cannot start {argv[0]!r}: {exc.strerror or exc}") from exc
    try:
        yield Connection(name, process, stderr_path)
    finally:
        await reap(process, term_first=term_first)
