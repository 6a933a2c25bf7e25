"""An in-process gateway with fake upstreams behind a real HTTP listener on a loopback port.

These tests use real sockets, so they run on trio's real clock (MockClock would jump past
socket waits); nothing in them sleeps, every wait has a deadline.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2 as httpx
import msgspec
import trio

from tests.gateway.fakes import FakeServer, fake_connector
from watchgate.config.schema import GatewayConfig, HttpListenerConfig
from watchgate.gateway.tree import Gateway
from watchgate.listeners.http import HttpListener

MODERN = "2026-07-28"
SSE_ACCEPT = "application/json, text/event-stream"


@asynccontextmanager
async def serving(
    config: GatewayConfig, *servers: FakeServer, deadline: float = 30, audit: Any = None, **http: Any
) -> AsyncIterator[tuple[Gateway, HttpListener, str]]:
    """(gateway, listener, endpoint URL) while both run; everything ends with the block.
    ``audit``: the gateway's audit actor (none by default); ``http``: listener settings."""
    settings = msgspec.structs.replace(HttpListenerConfig(), listen="127.0.0.1:0", **http)
    gateway = Gateway(config, connector=fake_connector(*servers), audit=audit)
    listener = HttpListener(gateway, settings)
    with trio.fail_after(deadline):
        async with trio.open_nursery() as nursery:
            await nursery.start(gateway.run)
            urls = await nursery.start(listener.serve)
            yield gateway, listener, f"{urls[0]}{settings.path}"
            listener.shutdown()
            await listener.stopped.wait()
            nursery.cancel_scope.cancel()


async def read_lines(stream: httpx.Response, take: Callable[[str], Awaitable[bool]]) -> None:
    """Hand each line of a streamed response to ``take`` until it returns False or the stream
    ends. Stopping cancels the read (as ``transports/sse.py`` does): a ``break`` would leave
    httpx2's nested generators to the garbage collector, a ResourceWarning under trio."""
    with trio.CancelScope() as reading:
        async for line in stream.aiter_lines():
            if not reading.cancel_called and not await take(line):
                reading.cancel()


async def first_line(stream: httpx.Response, predicate: Callable[[str], bool]) -> str:
    """The first line ``predicate`` likes; the rest of the stream is left unread."""
    found: list[str] = []

    async def take(line: str) -> bool:
        if predicate(line):
            found.append(line)
        return not found

    await read_lines(stream, take)
    assert found, "the stream ended without such a line"
    return found[0]


def events(body: str) -> list[dict[str, Any]]:
    """The JSON-RPC messages of an SSE body (priming events, with empty data, left out), or the
    one message of a JSON body (clients must take either)."""
    if body.lstrip().startswith("{"):
        return [json.loads(body)]
    found = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        data = [line[5:].strip() for line in block.split("\n") if line.startswith("data:")]
        if data and "".join(data):
            found.append(json.loads("".join(data)))
    return found


def tool_call(request_id: int, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    params = {"name": name, "arguments": arguments or {}}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


class LegacyClient:
    """A 2025-11-25 client over HTTP, one raw POST at a time."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url
        self.session: str | None = None
        self._ids = 0

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {"accept": SSE_ACCEPT, "content-type": "application/json", **extra}
        if self.session:
            headers["mcp-session-id"] = self.session
            headers["mcp-protocol-version"] = "2025-11-25"
        return headers

    async def post(self, message: dict[str, Any], **headers: str) -> httpx.Response:
        return await self.http.post(self.url, json=message, headers=self.headers(**headers))

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The request's answer (the last message of its stream)."""
        self._ids += 1
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": self._ids, "method": method}
        if params is not None:
            msg["params"] = params
        response = await self.post(msg)
        assert response.status_code == 200, response.text
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return events(response.text)[-1]
        return response.json()  # type: ignore[no-any-return]

    async def initialize(
        self, version: str = "2025-11-25", capabilities: dict[str, Any] | None = None
    ) -> None:
        init = {
            "protocolVersion": version,
            "capabilities": capabilities or {},
            "clientInfo": {"name": "http-test", "version": "1"},
        }
        response = await self.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init})
        assert response.status_code == 200, response.text
        self.session = response.headers["mcp-session-id"]
        accepted = await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert accepted.status_code == 202


def modern_headers(method: str, name: str | None = None, **extra: str) -> dict[str, str]:
    headers = {
        "accept": SSE_ACCEPT,
        "content-type": "application/json",
        "mcp-protocol-version": MODERN,
        "mcp-method": method,
        **extra,
    }
    if name is not None:
        headers["mcp-name"] = name
    return headers


def modern_request(request_id: int, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "modern-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
        **(params or {}).get("_meta", {}),
    }
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {**(params or {}), "_meta": meta}}


Answer = Callable[["BaseHTTPRequestHandler"], tuple[int, Any]]


@contextmanager
def issuer_endpoint(answer: Answer, path: str) -> Iterator[str]:
    """A stand-in for an identity provider's endpoint (JWKS, introspection), on loopback in a
    thread: ``answer`` gets each request and says its status and JSON body. Its URL."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            status, payload = answer(self)
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _reply

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{path}"
    finally:
        server.shutdown()
        server.server_close()
