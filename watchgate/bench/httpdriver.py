"""The benchmark's client over Streamable HTTP, with the stdio driver's face (lines out, lines in).

Each message sent is one POST on a keep-alive pool as wide as the widest window, so calls stay
outstanding together as they do on a pipe; each answer, a JSON body or an event of the POST's
stream, arrives as one line. httpx2 costs the client more per call than a pipe does, and it
costs every HTTP arm the same: what differs between arms is what sits behind the URL.
"""

from __future__ import annotations

import math
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import httpx2
import msgspec
import trio

from watchgate.bench.driver import BenchError, ClientSession, Connection, spawn
from watchgate.transports.sse import each_event

_ACCEPT: Final = "application/json, text/event-stream"
_POOL: Final = 64  # connections: the widest window measured (32) with room to spare
_encode = msgspec.json.Encoder().encode


class HttpConnection(ClientSession):
    """One MCP session at ``url``: the session id and protocol version it was given go with
    every later POST. A failed POST becomes an error answer to its request, so a measurement
    fails with the server's words instead of waiting."""

    def __init__(self, name: str, client: httpx2.AsyncClient, url: str, nursery: trio.Nursery) -> None:
        super().__init__(name)
        self._client = client
        self._url = url
        self._nursery = nursery
        self._headers = {"accept": _ACCEPT, "content-type": "application/json"}
        self._arrived, self._answers = trio.open_memory_channel[bytes](math.inf)

    @property
    def headers(self) -> dict[str, str]:
        """What every later POST of this session carries (its id and protocol version)."""
        return dict(self._headers)

    async def send(self, data: bytes) -> None:
        for line in data.split(b"\n"):
            if line.strip():
                self._nursery.start_soon(self._post, line)

    async def receive_lines(self) -> list[bytes]:
        lines = [await self._answers.receive()]
        while True:
            try:
                lines.append(self._answers.receive_nowait())
            except trio.WouldBlock:
                return lines

    async def _post(self, line: bytes) -> None:
        try:
            async with self._client.stream(
                "POST", self._url, content=line, headers=self._headers
            ) as response:
                await self._answered(line, response)
        except httpx2.HTTPError as exc:
            self._fail(line, f"{type(exc).__name__}: {exc}")

    async def _answered(self, line: bytes, response: httpx2.Response) -> None:
        if "mcp-session-id" in response.headers:
            self._headers["mcp-session-id"] = response.headers["mcp-session-id"]
        if response.status_code == 202:  # a notification or an answer taken
            return
        if response.status_code >= 400:
            body = (await response.aread()).decode("utf-8", "replace")[:300]
            self._fail(line, f"HTTP {response.status_code}: {body}")
        elif response.headers.get("content-type", "").startswith("text/event-stream"):
            await each_event(response, self._event)
        else:
            self._take(await response.aread())

    async def _event(self, event: httpx2.ServerSentEvent) -> bool:
        if event.data:  # a priming event has none
            self._take(event.data.encode())
        return True

    def _take(self, message: bytes) -> None:
        if b'"protocolVersion"' in message and "mcp-protocol-version" not in self._headers:
            result = msgspec.json.decode(message).get("result")
            if isinstance(result, dict) and isinstance(result.get("protocolVersion"), str):
                self._headers["mcp-protocol-version"] = result["protocolVersion"]
        self._arrived.send_nowait(message)

    def _fail(self, line: bytes, why: str) -> None:
        request_id = msgspec.json.decode(line).get("id")
        if request_id is not None:
            error = {"code": -32000, "message": f"{self.name}: {why}"}
            self._arrived.send_nowait(_encode({"jsonrpc": "2.0", "id": request_id, "error": error}))


@asynccontextmanager
async def http_session(name: str, url: str) -> AsyncIterator[HttpConnection]:
    """An initialized session at ``url``; its POSTs end with it. A `BenchError` (this session's,
    or the measurement's in the body) comes out as itself, not in the nursery's group, so the
    suite records it and goes on."""
    limits = httpx2.Limits(max_connections=_POOL, max_keepalive_connections=_POOL)
    try:
        async with httpx2.AsyncClient(timeout=60, limits=limits) as client, trio.open_nursery() as nursery:
            conn = HttpConnection(name, client, url, nursery)
            await conn.initialize()
            try:
                yield conn
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1 and isinstance(group.exceptions[0], BenchError):
            raise group.exceptions[0] from None
        raise


@asynccontextmanager
async def http_server(
    name: str, argv: Sequence[str], port: int, workdir: Path, *, env: Mapping[str, str] | None = None
) -> AsyncIterator[Connection]:
    """``argv`` started (and reaped) like every arm, once it accepts connections on ``port``."""
    async with spawn(name, argv, workdir, env=env, term_first=True) as process:
        if not await _listening(process, port):
            code = process.process.poll()
            why = "within 60 s" if code is None else f"(exit {code})"
            raise BenchError(f"{name} did not listen on port {port} {why}: {process.stderr_tail()}")
        yield process


async def _listening(process: Connection, port: int) -> bool:
    with trio.move_on_after(60):
        while process.process.poll() is None:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.02)  # another process opens the port: nothing to wait on but time
                continue
            await stream.aclose()
            return True
    return False


def free_port() -> int:
    """A loopback port nothing listens on now (the server binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
