"""What every remote transport shares (``http``, ``sse``, ``websocket``).

Two halves. The **settings** a connection is opened with: the config's ``headers``, the bearer
token of ``auth`` (read at every connect, so a rotated token is picked up by the next reconnect;
never logged, never in an error), and TLS (system trust, a private CA's bundle, or ``verify:
false`` warned at every connect). And the half of a **connection** the upstream actor sees that
does not depend on the wire: the bounded queue of what the server sent (a server faster than the
actor waits on its own stream), the end with a reason for ``ps`` and -32003, and the error
answer for a request the server refused.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import trio
from msgspec import UNSET

from watchgate.errors import JsonRpcError, PeerGone, UpstreamStartError
from watchgate.protocol import jsonrpc
from watchgate.protocol.jsonrpc import Kind, Line
from watchgate.protocol.urls import shown_host
from watchgate.transports.facts import ConnectionFacts, Ending

if TYPE_CHECKING:
    from watchgate.config.schema import AuthConfig, UpstreamConfig

__all__ = ["RemoteConnection", "bearer_token", "request_headers", "ssl_context", "tls_verify"]

_log = logging.getLogger("watchgate.upstream")
_QUEUED: Final = 256  # messages read from the server and not yet taken by the actor


class RemoteConnection:
    """The wire-independent half of a connection to a remote server; subclasses send."""

    pid = None  # no process: ps shows the host
    fast_path = None  # no pipe: every message goes through ``send``

    def __init__(self, config: UpstreamConfig) -> None:
        assert config.url is not None
        self.url = config.url
        self.host = shown_host(config.url)  # never its user:password
        self.server = config.name  # what log lines name: the server, as ps and the config do
        self.stderr_tail: list[str] = []  # a remote server has no stderr
        self._incoming, self._bursts = trio.open_memory_channel[list[bytes]](_QUEUED)
        self._ended = trio.Event()
        self._reason = "the connection was closed"
        self.needs_login = False  # it ended because a person must run `watchgate auth login`
        # the exact credentials this connection sends (configured header values, the bearer or
        # OAuth token): a server that repeats one in what it says has it replaced, everywhere
        self.secrets: set[bytes] = {v.encode() for v in config.headers.values() if len(v) >= 8}
        password = urlsplit(config.url).password
        if password:
            self.secrets.add(password.encode())

    async def send(self, lines: Sequence[Line]) -> None:
        """Each message on its own (a POST, a WebSocket message); raises `PeerGone` once the
        connection has ended."""
        self._check_open()
        for line in lines:
            message = bytes(line).rstrip(b"\n")
            if message.strip():
                await self._send_line(message)

    async def _send_line(self, line: bytes) -> None:
        raise NotImplementedError

    def receive(self) -> trio.MemoryReceiveChannel[list[bytes]]:
        """Each message the server sent, as a burst of one; ends with the connection."""
        return self._bursts

    def relay_input(self, request_id: int | str, capabilities: dict[str, Any]) -> None:
        """Only a server of the 2026-07-28 era has ``input_required`` (``transports/http.py``)."""

    def legacy_client(self, request_id: int | str) -> None:
        """Only a server over Streamable HTTP may speak both eras (``transports/http.py``)."""

    async def pump_stderr(self, on_line: object = None) -> None:
        await self._ended.wait()

    async def wait(self) -> int | None:
        await self._ended.wait()
        return None

    def ending(self) -> Ending:
        return Ending("gone", self._reason)

    def describe(self) -> ConnectionFacts:
        return ConnectionFacts(needs_login=self.needs_login)

    async def pump_side(self, on_burst: object) -> None:
        """A remote server's other era, if any, comes on this connection (``transports/dual.py``)."""

    async def drained(self) -> None:
        """A remote server has no diagnostics stream."""

    def _check_open(self) -> None:
        if self._ended.is_set():
            raise PeerGone(self._reason)

    def redacted(self, data: bytes) -> bytes:
        """``data`` without any credential this connection sends."""
        for secret in self.secrets:
            if secret in data:
                data = data.replace(secret, b"[REDACTED]")
        return data

    def remember_credential(self, value: str) -> None:
        token = value.partition(" ")[2] or value  # "Bearer abc" -> "abc"
        if len(token) >= 8:
            self.secrets.add(token.encode())

    async def _deliver(self, message: bytes) -> None:
        message = self.redacted(message)
        # the actor stopped reading: the connection is over
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._incoming.send([message])

    async def _refuse(self, line: bytes, reason: str) -> None:
        """Answer the request that was refused (a notification has nobody to tell: logged)."""
        try:
            msg = jsonrpc.decode(line)
        except JsonRpcError:
            return
        reason = self.redacted(reason.encode()).decode()
        if msg.kind is not Kind.REQUEST or msg.id is None or msg.id is UNSET:
            _log.warning("[%s] %s", self.server, reason)
            return
        error = JsonRpcError(jsonrpc.INTERNAL_ERROR, reason, {"host": self.host})
        await self._deliver(jsonrpc.encode(jsonrpc.error_response(msg.id, error)))

    def _end(self, reason: str, *, needs_login: bool = False) -> None:
        if self._ended.is_set():
            return
        reason = self.redacted(reason.encode()).decode()
        self.needs_login = needs_login
        self._reason = reason
        self._ended.set()
        self._incoming.close()


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


def request_headers(config: UpstreamConfig) -> dict[str, str]:
    """The headers every request to the server carries: the config's, and the bearer token."""
    headers = dict(config.headers)
    if config.auth is not None and config.auth.type == "bearer":
        headers["authorization"] = f"Bearer {bearer_token(config.auth)}"
    return headers


def tls_verify(config: UpstreamConfig) -> str | bool:
    """What to verify the server's certificate with: a CA bundle, the system's trust, or nothing."""
    verify: str | bool = config.tls.ca_file or config.tls.verify
    if isinstance(verify, str) and not os.access(verify, os.R_OK):
        raise UpstreamStartError(f"tls.ca_file: cannot read {verify}")
    if verify is False:
        _log.warning("[%s] tls.verify is false: any certificate is accepted (a test bench only)", config.name)
    return verify


def ssl_context(config: UpstreamConfig) -> ssl.SSLContext | None:
    """The TLS settings as an ``ssl`` context, for a transport that takes one (WebSocket)."""
    if urlsplit(config.url or "").scheme not in ("https", "wss"):
        return None
    verify = tls_verify(config)
    context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    if verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
