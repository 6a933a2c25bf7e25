"""``transport: http``: a remote MCP server over Streamable HTTP (MCP 2025-11-25), with httpx2.

Each message the upstream actor sends is one POST to the server's URL. The answer comes back
on that POST, as a JSON body or as a stream of server-sent events (httpx2's ``EventSource``:
no SSE parsing here), and each message in it is handed to the actor as a burst. The server's
``Mcp-Session-Id`` is kept and sent with every later POST; the session is ended with a DELETE
when the upstream stops. The actor needs nothing else: this module meets the same message seam
as stdio (``transports/base.py``).

What goes wrong on the wire is translated here: a server that cannot be reached, or that
forgets the session (404), ends the connection with a reason, and the supervisor reconnects
with its backoff, answering what was in flight with -32003 naming the server; an HTTP error
status answers that one request with an error saying so.

Messages the server sends outside a request (``list_changed``, log messages) come on the GET
stream, opened once the session is initialized and reopened with ``Last-Event-ID`` when it
drops (a server without one answers 405, which is fine).

Not yet (issue 13): the 2026-07-28 era, legacy HTTP+SSE, OAuth, resuming a POST's own stream.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import httpx2
import trio
from msgspec import UNSET

from watchgate.errors import JsonRpcError, PeerGone, UpstreamStartError
from watchgate.protocol import jsonrpc
from watchgate.protocol.jsonrpc import Kind, Line
from watchgate.sanitize import clean

if TYPE_CHECKING:
    from watchgate.config.schema import AuthConfig, UpstreamConfig

__all__ = ["HttpConnection", "http_connector"]

_log = logging.getLogger("watchgate.upstream")
# httpx2 logs every request line at INFO; the gateway's own log says what matters, once
logging.getLogger("httpx2").setLevel(logging.WARNING)
_ACCEPT: Final = "application/json, text/event-stream"
_SESSION: Final = "mcp-session-id"
_VERSION: Final = "mcp-protocol-version"
_MAX_BODY_QUOTED: Final = 200
_INITIALIZED: Final = b'"notifications/initialized"'
_GET_RETRIES: Final = 5  # GET streams that fail in a row before the gateway stops reopening it
_GET_RETRY_DELAY: Final = 1.0
_QUEUED: Final = 256  # messages read from the server and not yet taken by the actor


class HttpConnection:
    """One Streamable HTTP session with a remote server, as the upstream actor sees it."""

    pid = None  # no process: ps shows the host
    ready = False  # no fast path: every message is a POST

    def __init__(self, config: UpstreamConfig, client: httpx2.AsyncClient, nursery: trio.Nursery) -> None:
        assert config.url is not None
        self.url = config.url
        self.host = urlsplit(config.url).netloc
        self.stderr_tail: list[str] = []  # a remote server has no stderr
        self._client = client
        self._nursery = nursery
        self._session_id: str | None = None
        self._protocol_version: str | None = None
        # bounded: a server that sends faster than the actor reads waits on its own stream
        self._incoming, self._bursts = trio.open_memory_channel[list[bytes]](_QUEUED)
        self._ended = trio.Event()
        self._reason = "the connection was closed"
        self._listening = False
        self._last_event_id: str | None = None

    # -- the message seam ---------------------------------------------------------------------

    def send_nowait(self, data: Line) -> int:
        return 0

    async def send(self, data: Line) -> None:
        """POST each message; the answers arrive through ``receive``. Raises `PeerGone` once the
        connection has ended."""
        if self._ended.is_set():
            raise PeerGone(self._reason)
        for line in bytes(data).split(b"\n"):
            if line.strip():
                self._nursery.start_soon(self._post, line)
                if not self._listening and _INITIALIZED in line:
                    self._listening = True
                    self._nursery.start_soon(self._listen)

    def receive(self) -> trio.MemoryReceiveChannel[list[bytes]]:
        """Each message the server sent, as a burst of one; ends with the connection."""
        return self._bursts

    # -- what ps and the exit reason show -----------------------------------------------------

    async def pump_stderr(self, on_line: object = None) -> None:
        await self._ended.wait()

    async def wait(self) -> int | None:
        await self._ended.wait()
        return None

    def describe_exit(self) -> str:
        return self._reason

    # -- the wire -----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"accept": _ACCEPT, "content-type": "application/json"}
        if self._session_id is not None:
            headers[_SESSION] = self._session_id
        if self._protocol_version is not None:
            headers[_VERSION] = self._protocol_version
        return headers

    async def _post(self, line: bytes) -> None:
        try:
            async with self._client.stream(
                "POST", self.url, content=line, headers=self._headers()
            ) as response:
                await self._on_response(line, response)
        except httpx2.HTTPError as exc:  # cannot reach it, or it broke off: end, the supervisor retries
            self._end(f"cannot reach {self.host}: {clean(str(exc) or type(exc).__name__)}")

    async def _on_response(self, line: bytes, response: httpx2.Response) -> None:
        session = response.headers.get(_SESSION)
        if session is not None:
            self._session_id = session
        status = response.status_code
        if status == 202:
            return
        if status == 404 and self._session_id is not None:
            self._end(f"{self.host} ended the session (HTTP 404)")
            return
        if status >= 400:
            body = clean((await response.aread())[:_MAX_BODY_QUOTED].decode("utf-8", "replace"))
            hint = " (check the server's auth: or headers:)" if status in (401, 403) else ""
            await self._refuse(
                line, f"{self.host} answered HTTP {status}{hint}" + (f": {body}" if body else "")
            )
            return
        kind = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if kind == "text/event-stream":
            async for event in httpx2.EventSource(response):
                if event.data:
                    await self._deliver(event.data.encode())
        else:
            await self._deliver(await response.aread())

    async def _listen(self) -> None:
        """The GET stream: what the server says outside a request, until the session ends."""
        failures = 0
        while not self._ended.is_set() and failures < _GET_RETRIES:
            headers = {**self._headers(), "accept": "text/event-stream"}
            if self._last_event_id is not None:
                headers["last-event-id"] = self._last_event_id
            try:
                async with self._client.stream("GET", self.url, headers=headers) as response:
                    if response.status_code >= 400:  # 405: this server offers no such stream
                        return
                    failures = 0
                    async for event in httpx2.EventSource(response):
                        if event.id:
                            self._last_event_id = event.id
                        if event.data:
                            await self._deliver(event.data.encode())
            except httpx2.HTTPError as exc:
                failures += 1
                _log.debug("[%s] the GET stream dropped: %r", self.host, exc)
            await trio.sleep(_GET_RETRY_DELAY)  # dropped or ended: reopen, resuming after the last event

    async def _deliver(self, message: bytes) -> None:
        self._remember_version(message)
        # the actor stopped reading: the session is over
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._incoming.send([message])

    def _remember_version(self, message: bytes) -> None:
        """The protocol version the server chose in its ``initialize`` answer goes on every later POST."""
        if self._protocol_version is not None or b'"protocolVersion"' not in message:
            return
        try:
            result = jsonrpc.load(jsonrpc.decode(message).result)
        except JsonRpcError:
            return
        if isinstance(result, dict) and isinstance(result.get("protocolVersion"), str):
            self._protocol_version = result["protocolVersion"]

    async def _refuse(self, line: bytes, reason: str) -> None:
        """Answer the request that was refused (a notification has nobody to tell: logged)."""
        try:
            msg = jsonrpc.decode(line)
        except JsonRpcError:
            return
        if msg.kind is not Kind.REQUEST or msg.id is None or msg.id is UNSET:
            _log.warning("[%s] %s", self.host, reason)
            return
        error = JsonRpcError(jsonrpc.INTERNAL_ERROR, reason, {"host": self.host})
        await self._deliver(jsonrpc.encode(jsonrpc.error_response(msg.id, error)))

    def _end(self, reason: str) -> None:
        if self._ended.is_set():
            return
        self._reason = reason
        self._ended.set()
        self._incoming.close()

    async def terminate(self) -> None:
        """End the session on the server (DELETE), as the protocol asks of a client that leaves."""
        self._end(self._reason)
        if self._session_id is None:
            return
        try:
            await self._client.delete(self.url, headers=self._headers())
        except httpx2.HTTPError as exc:
            _log.debug("[%s] DELETE of the session failed: %r", self.host, exc)


def bearer_token(auth: AuthConfig) -> str:
    """The token, read now (every connect); a clear start error naming the key, never the value."""
    if auth.token_env is not None:
        token = os.environ.get(auth.token_env, "").strip()
        if not token:
            raise UpstreamStartError(f"auth.token_env: the variable {auth.token_env} is not set or empty")
        return token
    assert auth.token_file is not None
    try:
        with open(auth.token_file, encoding="utf-8") as file:
            token = file.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise UpstreamStartError(f"auth.token_file: cannot read {auth.token_file}: {reason}") from None
    if not token:
        raise UpstreamStartError(f"auth.token_file: {auth.token_file} is empty")
    return token


@asynccontextmanager
async def http_connector(config: UpstreamConfig) -> AsyncIterator[HttpConnection]:
    """Open a Streamable HTTP session with ``config.url`` (its ``headers``, its bearer token)."""
    if not config.url:
        raise UpstreamStartError("transport http needs a url")
    headers = dict(config.headers)
    if config.auth is not None:
        headers["authorization"] = f"Bearer {bearer_token(config.auth)}"
    # connect and write are bounded here; an answer may take as long as the tool does, which
    # the actor's own request_timeout bounds (it cancels the call and answers -32001)
    timeout = httpx2.Timeout(connect=config.startup_timeout, read=None, write=30.0, pool=30.0)
    verify: str | bool = config.tls.ca_file or config.tls.verify
    if isinstance(verify, str) and not os.access(verify, os.R_OK):
        raise UpstreamStartError(f"tls.ca_file: cannot read {verify}")
    if verify is False:
        _log.warning("[%s] tls.verify is false: any certificate is accepted (a test bench only)", config.name)
    async with (
        httpx2.AsyncClient(timeout=timeout, headers=headers, follow_redirects=False, verify=verify) as client,
        trio.open_nursery() as nursery,
    ):
        connection = HttpConnection(config, client, nursery)
        try:
            yield connection
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(config.shutdown_timeout):
                await connection.terminate()
            nursery.cancel_scope.cancel()
