"""``transport: http`` and ``transport: sse``: a remote MCP server over HTTP, with httpx2.

The wire of the 2025-11-25 era (Streamable HTTP, and the legacy HTTP+SSE transport it falls back
to) is ``transports/streamable.py``'s. This module adds **the 2026-07-28 era** (stateless): the
connection probes it first with ``server/discover`` and falls back to ``initialize`` on anything
but a modern answer (the spec's procedure); ``transports/modern/`` says what is translated for
a server that speaks it. A server that also accepts ``initialize`` speaks both
(``server/discover`` does not say so: the first 2025-11-25 client's request finds out): that
client's requests go over a legacy session of the connection's own (``transports/dual.py``), so
the server asks that client its questions as it would directly.

OAuth 2.1 (``auth: {type: oauth}``) is an ``httpx2.Auth`` on the connection's client
(``transports/oauth.py``); its refusals end the connection like any other, with a reason.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

import httpx2
import msgspec
import trio

from watchgate.errors import PeerGone, UpstreamStartError
from watchgate.sanitize import clean
from watchgate.transports.dual import EraSplit, LegacySide
from watchgate.transports.exchange import first_message
from watchgate.transports.facts import ConnectionFacts
from watchgate.transports.listen import ListenStream
from watchgate.transports.modern import MODERN, ModernConnection, Send, as_object, supported_versions
from watchgate.transports.remote import RemoteConnection, request_headers, tls_verify
from watchgate.transports.sse import LegacyStreamError
from watchgate.transports.streamable import ACCEPT, INITIALIZE, StreamableSession

if TYPE_CHECKING:
    from watchgate.config.schema import UpstreamConfig

__all__ = ["HttpConnection", "http_connector", "open_client", "sse_connector"]

_log = logging.getLogger("watchgate.upstream")
# httpx2 logs every request line at INFO; the gateway's own log says what matters, once
logging.getLogger("httpx2").setLevel(logging.WARNING)
_SUBSCRIPTIONS: Final = frozenset({"resources/subscribe", "resources/unsubscribe"})


class HttpConnection(StreamableSession):
    """One connection to a remote server over HTTP, in the era(s) it speaks, as the upstream
    actor sees it."""

    def __init__(self, config: UpstreamConfig, client: httpx2.AsyncClient, nursery: trio.Nursery) -> None:
        super().__init__(config, client, nursery)
        client.event_hooks["request"].append(self._remember_authorization)
        self._probe_modern = config.protocol != "legacy"  # the 2026-07-28 era first, then initialize
        self._modern: ModernConnection | None = None  # the 2026-07-28 era, once the probe found it
        self._listen_stream: ListenStream | None = None
        # a server of both eras: which era each message goes in, and the legacy session
        self._split: EraSplit | None = None
        self._legacy: LegacySide | None = None
        self._legacy_opening = trio.Lock()
        self._initialize: dict[str, Any] = {}  # the actor's initialize: the legacy session's too

    async def _send_line(self, line: bytes) -> None:
        if self._modern is not None:
            await self._send_modern(line)
        else:
            await super()._send_line(line)

    async def _answered_otherwise(self, line: bytes) -> bool:
        """The actor's ``initialize`` probes the 2026-07-28 era first."""
        if self._probe_modern and INITIALIZE in line:
            self._probe_modern = False
            return await self._discover(line)
        return False

    async def _remember_authorization(self, request: httpx2.Request) -> None:
        """The credential each request carries (a bearer token, or OAuth's current access token),
        so that a server repeating it has it redacted (``RemoteConnection.redacted``)."""
        credential = request.headers.get("authorization")
        if credential is not None:
            self.remember_credential(credential)

    def relay_input(self, request_id: int | str, capabilities: dict[str, Any]) -> None:
        if self._modern is not None:  # only the 2026-07-28 era has input_required results
            self._modern.relay(request_id, capabilities)

    def legacy_client(self, request_id: int | str) -> None:
        if self._split is not None:
            self._split.legacy_client(request_id)

    # -- the 2026-07-28 era: this connection is the wire of a ModernConnection -------------------

    async def _discover(self, line: bytes) -> bool:
        """Probe the modern era with ``server/discover``; True if the server speaks it (the actor
        then gets its ``initialize`` answered from the discovery). A server that names other
        versions, or answers anything else, is spoken to with ``initialize``."""
        initialize = msgspec.json.decode(line)
        modern = ModernConnection(self, initialize, self.server)
        for _ in range(2):  # once more if the first try was refused naming 2026-07-28 as supported
            probe = modern.discover_request()
            async with self._client.stream(
                "POST", self.url, content=probe.body, headers=self._base(probe.headers)
            ) as response:
                answer = await first_message(response)
            if response.status_code == 200:
                if modern.discovered(answer) is not None:
                    return False
                self._modern = modern
                if self._config.protocol == "auto":  # it may speak the older era too: asked when needed
                    self._split, self._initialize = EraSplit(), initialize
                self._listen_stream = ListenStream(
                    self._client, self.url, self.server, modern.heard, modern.renewed_listen, self._nursery
                )
                _log.info("[%s] speaks MCP %s (stateless)", self.server, MODERN)
                await self._deliver_as_is(modern.initialize_answer())
                return True
            if MODERN not in (supported_versions(answer) or []):
                return False
        return False

    async def _send_modern(self, line: bytes) -> None:
        modern = self._modern
        message = as_object(line)
        if modern is None or message is None:
            return
        if self._split is not None and self._split.era_of(message) == "legacy":
            if message.get("method") in _SUBSCRIPTIONS:
                await modern.note(message)
            self._nursery.start_soon(self._send_legacy, line)
            return
        await modern.send(message, line)

    async def post(self, send: Send) -> None:
        self._nursery.start_soon(self._post_modern, send)

    async def cancel(self, request_id: object, line: bytes) -> None:
        """This era's cancellation: the call's stream closes."""
        scope = self._calls.get(request_id)
        if scope is not None:
            scope.cancel()

    async def listen(self, request: Send | None) -> None:
        if self._listen_stream is not None:
            self._listen_stream.replace(request)

    async def deliver(self, message: bytes) -> None:
        await self._deliver_as_is(message)

    async def _post_modern(self, send: Send) -> None:
        with trio.CancelScope() as scope:
            if send.request_id is not None:
                self._calls[send.request_id] = scope
            try:
                with self._ending_on_failure():
                    async with self._client.stream(
                        "POST", self.url, content=send.body, headers=self._base(send.headers)
                    ) as response:
                        await self._on_response(send.body, response)
            finally:
                self._calls.pop(send.request_id, None)

    # -- a server of both eras: its legacy session, for 2025-11-25 clients ---------------------------

    async def _send_legacy(self, line: bytes) -> None:
        side = await self._legacy_side()
        if side is None:  # none to be had: bridged in the 2026-07-28 era, as for a server of one era
            await self._send_modern(line)
            return
        with contextlib.suppress(PeerGone):  # the side ended, and with it this connection
            await side.send([line])

    async def _legacy_side(self) -> LegacySide | None:
        """The legacy session, opened by the first message that needs it (the others wait)."""
        async with self._legacy_opening:
            assert self._split is not None
            if self._legacy is None and not self._split.unavailable:
                side = LegacySide(self, self._config, self._client, self._nursery)
                with trio.move_on_after(self._config.startup_timeout):
                    reason = await side.open(self._initialize)
                    if reason is None:
                        self._legacy = side
                        _log.info(
                            "[%s] opened a %s session for its clients of that era", self.server, side.version
                        )
                if self._legacy is None:
                    self._split.give_up()
                    _log.info(
                        "[%s] speaks only 2026-07-28 (no initialize-era session: %s): its 2025-11-25 "
                        "clients are bridged",
                        self.server,
                        reason or "no answer in time",
                    )
            return self._legacy

    async def from_legacy(self, message: bytes) -> None:
        """What the legacy session says goes to the actor as it is (not through the translation
        of the 2026-07-28 era); its questions are remembered so the answers go back there."""
        assert self._split is not None
        self._split.received(as_object(message))
        await self._deliver_as_is(message)

    @staticmethod
    def _base(headers: dict[str, str]) -> dict[str, str]:
        return {"accept": ACCEPT, "content-type": "application/json", **headers}

    async def _deliver(self, message: bytes) -> None:
        if self._modern is None:
            await super()._deliver(message)
        else:
            await self._modern.received(message)

    async def _deliver_as_is(self, message: bytes) -> None:
        """Straight to the actor: an answer made here, the listen stream's, the legacy session's."""
        await RemoteConnection._deliver(self, message)

    def describe(self) -> ConnectionFacts:
        side = self._legacy
        beside = (side.version,) if side is not None and side.version is not None else ()
        return ConnectionFacts(also_speaks=beside, needs_login=self.needs_login)

    async def terminate(self) -> None:
        if self._legacy is not None:
            await self._legacy.terminate()
        await super().terminate()


@asynccontextmanager
async def open_client(config: UpstreamConfig) -> AsyncIterator[tuple[httpx2.AsyncClient, trio.Nursery]]:
    """The httpx2 client for ``config`` (its headers, its bearer token, its TLS) and the nursery
    that owns the connection's requests; both end with the connection."""
    # connect and write are bounded here; an answer may take as long as the tool does, which
    # the actor's own request_timeout bounds (it cancels the call and answers -32001)
    timeout = httpx2.Timeout(connect=config.startup_timeout, read=None, write=30.0, pool=30.0)
    auth = None
    if config.auth is not None and config.auth.type == "oauth":
        from watchgate.transports.oauth import gateway_auth  # the MCP SDK: imported only when used

        auth = gateway_auth(config)
    async with (
        httpx2.AsyncClient(
            auth=auth,
            timeout=timeout,
            headers=request_headers(config),
            follow_redirects=False,
            verify=tls_verify(config),
        ) as client,
        trio.open_nursery() as nursery,
    ):
        try:
            yield client, nursery
        finally:
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def _connected(config: UpstreamConfig, *, legacy: bool) -> AsyncIterator[HttpConnection]:
    if not config.url:
        raise UpstreamStartError(f"transport {config.transport!s} needs a url")
    failure = None
    async with open_client(config) as (client, nursery):
        connection = HttpConnection(config, client, nursery)
        if legacy:
            failure = await _open_legacy(connection, config.startup_timeout)
        if failure is None:
            try:
                yield connection
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(config.shutdown_timeout):
                    await connection.terminate()
    if failure is not None:  # raised out here, not from inside the connection's nursery
        raise UpstreamStartError(failure)


async def _open_legacy(connection: HttpConnection, timeout: float) -> str | None:
    """Open ``transport: sse``'s event stream; why not, if it could not be opened in time."""
    with trio.move_on_after(timeout):
        try:
            await connection.open_legacy()
        except (LegacyStreamError, httpx2.HTTPError) as exc:
            return (
                f"cannot open the event stream of {connection.host}: {clean(str(exc) or type(exc).__name__)}"
            )
        return None
    return f"{connection.host} named no endpoint within {timeout:g}s"


def http_connector(config: UpstreamConfig) -> AbstractAsyncContextManager[HttpConnection]:
    """Open a session with ``config.url``: Streamable HTTP, or legacy HTTP+SSE if that is refused."""
    return _connected(config, legacy=False)


def sse_connector(config: UpstreamConfig) -> AbstractAsyncContextManager[HttpConnection]:
    """Open the legacy HTTP+SSE event stream of ``config.url`` (``transport: sse``)."""
    return _connected(config, legacy=True)
