"""A Streamable HTTP session (MCP 2025-11-25) with a remote server, and the legacy HTTP+SSE
transport (2024-11-05) it falls back to: the wire half of ``transport: http`` and ``sse``.

Each message the upstream actor sends is one POST to the server's URL. The answer comes back on
that POST, as a JSON body or as a stream of server-sent events (httpx2's ``EventSource``: no SSE
parsing here), and each message in it is handed to the actor as a burst. A request's stream that
ends before its answer is resumed with a GET carrying ``Last-Event-ID`` after the server's
``retry`` delay. The server's ``Mcp-Session-Id`` is kept and sent with every later POST; a 404
to it means the server forgot the session, and the session initializes a new one by itself (the
``initialize`` the actor sent, replayed) and sends the message again: the actor and the clients
never see it. The session is ended with a DELETE when the upstream stops. Messages the server
sends outside a request (``list_changed``, log messages) come on the GET stream, opened once the
session is initialized and reopened with ``Last-Event-ID`` when it drops.

**Legacy HTTP+SSE** (``transports/sse.py``): a server that refuses the ``initialize`` POST with
400, 404 or 405 is spoken to the old way, automatically (the spec's backward-compatibility
procedure): one GET event stream carries every answer, and messages are POSTed to the endpoint
it names. ``transport: sse`` starts in that mode.

What goes wrong on the wire is translated here: a server that cannot be reached ends the
connection with a reason, and the supervisor reconnects with its backoff, answering what was in
flight with -32003 naming the server; an HTTP error status answers that one request with an
error saying so. ``transports/http.py`` adds the 2026-07-28 era on top.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

import httpx2
import msgspec
import trio

from watchgate.errors import JsonRpcError, UpstreamAuthError
from watchgate.protocol import jsonrpc
from watchgate.protocol.urls import shown_url
from watchgate.sanitize import clean
from watchgate.transports.exchange import (
    GET_RETRY_DELAY,
    MAX_ANSWER,
    MAX_ERROR_BODY,
    MAX_RETRY,
    RequestStream,
    TooLarge,
    answers,
    read_bounded,
    request_id_of,
    retry_delay,
)
from watchgate.transports.remote import RemoteConnection
from watchgate.transports.sse import LegacyStreamError, each_event, read_legacy_stream

if TYPE_CHECKING:
    from watchgate.config.schema import UpstreamConfig

__all__ = ["StreamableSession"]

_log = logging.getLogger("watchgate.upstream")
ACCEPT: Final = "application/json, text/event-stream"
_SESSION: Final = "mcp-session-id"
_VERSION: Final = "mcp-protocol-version"
_MAX_BODY_QUOTED: Final = 200
INITIALIZE: Final = b'"initialize"'
_INITIALIZED: Final = b'"notifications/initialized"'
_CANCELLED: Final = b'"notifications/cancelled"'
_GET_RETRIES: Final = 5  # GET streams that fail in a row before the gateway stops reopening it
_LEGACY_STATUSES: Final = (400, 404, 405)  # an initialize refused so: a legacy HTTP+SSE server


class StreamableSession(RemoteConnection):
    """One Streamable HTTP (or legacy HTTP+SSE) session with a remote server."""

    def __init__(self, config: UpstreamConfig, client: httpx2.AsyncClient, nursery: trio.Nursery) -> None:
        super().__init__(config)
        self._config = config
        self._client = client
        self._nursery = nursery
        self._session_id: str | None = None
        self._protocol_version: str | None = None
        self._listening = False
        self._last_event_id: str | None = None
        self._endpoint: str | None = None  # legacy HTTP+SSE: where to POST
        self._handshake: list[bytes] = []  # initialize and initialized, replayed after a 404
        self._renewing = trio.Lock()
        # a call's POST, by request id: closing its stream cancels it (modern era), and a legacy
        # call the gateway cancels stops being read
        self._calls: dict[object, trio.CancelScope] = {}

    async def _send_line(self, line: bytes) -> None:
        """POST the message; the answers arrive through ``receive``."""
        if len(self._handshake) < 2 and (INITIALIZE in line or _INITIALIZED in line):
            self._handshake.append(line)  # the first two lines the actor sends
        if _CANCELLED in line:
            self._stop_reading(line)  # the call is over for the gateway: so is its stream
        self._nursery.start_soon(self._post, line)
        if not self._listening and self._endpoint is None and _INITIALIZED in line:
            self._listening = True
            self._nursery.start_soon(self._listen)

    async def _answered_otherwise(self, line: bytes) -> bool:
        """A subclass's chance to answer a message another way before it is POSTed here."""
        return False

    async def open_legacy(self) -> None:
        """Open the legacy event stream; from now on messages go to the endpoint it names.
        Raises `LegacyStreamError` or httpx2's errors when the server offers none."""
        self._endpoint = await self._nursery.start(self._read_legacy)

    async def _read_legacy(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await read_legacy_stream(self._client, self.url, self._deliver, task_status=task_status)
        except (LegacyStreamError, httpx2.HTTPError) as exc:
            if self._endpoint is None:
                raise  # not opened yet: the opener says why
            self._end(f"the event stream of {self.host} failed: {clean(str(exc) or type(exc).__name__)}")
            return
        self._end(f"{self.host} closed its event stream")

    # -- the wire -----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"accept": ACCEPT, "content-type": "application/json"}
        if self._session_id is not None:
            headers[_SESSION] = self._session_id
        if self._protocol_version is not None:
            headers[_VERSION] = self._protocol_version
        return headers

    @contextmanager
    def _ending_on_failure(self) -> Iterator[None]:
        """A server that cannot be reached or broke off, or that OAuth refuses, ends the
        connection saying why: the supervisor reconnects with its backoff."""
        try:
            yield
        except httpx2.HTTPError as exc:
            self._end(f"cannot reach {self.host}: {clean(str(exc) or type(exc).__name__)}")
        except UpstreamAuthError as exc:  # OAuth failed, or a person must log in first
            self._end(str(exc), needs_login=exc.needs_login)

    def _stop_reading(self, cancel: bytes) -> None:
        """A legacy-era call the gateway cancelled (timed out, or its client gave up): stop
        reading its response stream, so no task and no connection outlive the call."""
        try:
            params = jsonrpc.load(jsonrpc.decode(cancel).params)
        except (JsonRpcError, msgspec.DecodeError):
            return
        scope = self._calls.get(params.get("requestId")) if isinstance(params, dict) else None
        if scope is not None:
            scope.cancel()

    async def _post(self, line: bytes, *, renewed: bool = False) -> None:
        request_id = request_id_of(line)
        if request_id is None:
            await self._post_one(line, renewed=renewed)
            return
        with trio.CancelScope() as scope:
            self._calls[request_id] = scope
            try:
                await self._post_one(line, renewed=renewed)
            finally:
                self._calls.pop(request_id, None)

    async def _post_one(self, line: bytes, *, renewed: bool = False) -> None:
        with self._ending_on_failure():
            if await self._answered_otherwise(line):
                return
            if self._endpoint is not None:
                await self._post_legacy(line)
                return
            session = self._session_id
            async with self._client.stream(
                "POST", self.url, content=line, headers=self._headers()
            ) as response:
                forgotten = response.status_code == 404 and session is not None
                if not forgotten:
                    await self._on_response(line, response)
            if not forgotten or session is None:
                return
            if renewed:  # forgotten again at once: this server keeps no sessions
                self._end(f"{self.host} ended the session (HTTP 404)")
            elif await self._renew(session):
                await self._post_one(line, renewed=True)

    async def _post_legacy(self, line: bytes) -> None:
        assert self._endpoint is not None
        response = await self._client.post(
            self._endpoint, content=line, headers={"content-type": "application/json"}
        )
        if response.status_code >= 400:
            await self._refuse(line, self._status_text(response.status_code, response.text))

    def _status_text(self, status: int, body: str) -> str:
        hint = " (check the server's auth: or headers:)" if status in (401, 403) else ""
        body = clean(body[:_MAX_BODY_QUOTED])
        return f"{self.host} answered HTTP {status}{hint}" + (f": {body}" if body else "")

    async def _on_response(self, line: bytes, response: httpx2.Response) -> None:
        session = response.headers.get(_SESSION)
        if session is not None:
            self._session_id = session
        status = response.status_code
        if status == 202:
            return
        if 300 <= status < 400:  # not followed: the request (and its token) stays where configured
            target = shown_url(response.headers.get("location", "?"))
            await self._refuse(
                line,
                f"{self.host} answered HTTP {status}, a redirect to {target}: put that URL in the "
                "config if it is the server (Watchgate does not follow redirects)",
            )
            return
        if status in _LEGACY_STATUSES and self._session_id is None and INITIALIZE in line:
            await self._fall_back(line, status)
            return
        if status >= 400:
            body = await read_bounded(response, MAX_ERROR_BODY)
            if answers(body, request_id_of(line)):  # the server's own JSON-RPC error says it best
                await self._deliver(body)
                return
            await self._refuse(line, self._status_text(status, body.decode("utf-8", "replace")))
            return
        kind = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if kind != "text/event-stream":
            try:
                body = await read_bounded(response, MAX_ANSWER)
            except TooLarge:
                await self._refuse(line, f"{self.host} answered with more than {MAX_ANSWER >> 20} MiB")
                return
            await self._deliver(body)
            return
        stream = RequestStream(request_id_of(line))
        await self._read_events(response, stream)
        if not stream.answered:
            await self._resume(line, stream)

    async def _fall_back(self, line: bytes, status: int) -> None:
        """Streamable HTTP refused: try the legacy HTTP+SSE transport at the same URL."""
        try:
            await self.open_legacy()
        except (LegacyStreamError, httpx2.HTTPError) as exc:
            reason = (
                f"{self.host} answered HTTP {status} to initialize, and offers no legacy event stream ({exc})"
            )
            await self._refuse(line, clean(reason))
            return
        _log.info("[%s] speaks the legacy HTTP+SSE transport", self.server)
        await self._post_legacy(line)

    async def _renew(self, forgotten: str) -> bool:
        """The server answered 404 to session ``forgotten``: initialize a new session (once,
        however many messages found out at the same time). False if that failed: ended."""
        async with self._renewing:
            if self._session_id != forgotten:
                return not self._ended.is_set()  # another message renewed it already
            _log.info("[%s] the server forgot the session: starting a new one", self.server)
            self._session_id = None
            initialize, *rest = self._handshake or [b""]
            answer = await self._client.post(self.url, content=initialize, headers=self._headers())
            self._session_id = answer.headers.get(_SESSION)
            if answer.status_code >= 400 or self._session_id is None:
                refused = f"refused a new one (HTTP {answer.status_code})"
                self._end(f"{self.host} ended the session (HTTP 404) and {refused}")
                return False
            for line in rest:
                await self._client.post(self.url, content=line, headers=self._headers())
            if self._listening:
                self._nursery.start_soon(self._listen)
            return True

    async def _read_events(self, response: httpx2.Response, stream: RequestStream) -> None:
        """Deliver each event of a request's stream, noting what resuming it would need; once
        answered, the stream's work is done, even if the server keeps it open."""

        async def take(event: httpx2.ServerSentEvent) -> bool:
            if event.id:
                stream.last_event_id = event.id
            if event.retry is not None:
                stream.retry = retry_delay(event.retry)
            if event.data:
                message = event.data.encode()
                stream.answered = answers(message, stream.request_id)
                if not stream.answered and stream.request_id is not None and b'"method"' in message:
                    # a question on this request's stream belongs to the client whose call it is
                    message = jsonrpc.with_related(message, stream.request_id)
                await self._deliver(message)
            return not stream.answered

        await each_event(response, take)

    async def _resume(self, line: bytes, stream: RequestStream) -> None:
        """A request's stream ended before its answer: resume it with a GET carrying
        ``Last-Event-ID`` after the server's ``retry`` delay (a dropped stream is not a
        cancellation, spec 2025-11-25); a stream with no event id cannot be resumed."""
        for _ in range(_GET_RETRIES):
            if stream.request_id is None or stream.last_event_id is None or self._ended.is_set():
                break
            await trio.sleep(stream.retry)
            headers = {**self._headers(), "accept": "text/event-stream"}
            headers["last-event-id"] = stream.last_event_id
            try:
                async with self._client.stream("GET", self.url, headers=headers) as response:
                    if response.status_code >= 400:
                        break
                    await self._read_events(response, stream)
            except httpx2.HTTPError as exc:
                _log.debug("[%s] resuming a stream failed: %r", self.server, exc)
            if stream.answered:
                return
        if stream.request_id is not None and not stream.answered:
            await self._refuse(line, f"{self.host} closed the stream before answering")

    async def _listen(self) -> None:
        """The GET stream: what the server says outside a request, until the session ends."""
        failures = 0
        delay = GET_RETRY_DELAY
        while not self._ended.is_set() and failures < _GET_RETRIES:
            headers = {**self._headers(), "accept": "text/event-stream"}
            if self._last_event_id is not None:
                headers["last-event-id"] = self._last_event_id
            try:
                async with self._client.stream("GET", self.url, headers=headers) as response:
                    if response.status_code >= 400:  # 405: this server offers no such stream
                        return
                    delivered = False
                    async for event in httpx2.EventSource(response):
                        if event.id:
                            self._last_event_id = event.id
                        if event.retry is not None:
                            delay = retry_delay(event.retry)
                        if event.data:
                            delivered = True
                            await self._deliver(event.data.encode())
                # a stream that ends before it said anything is a failure too (no endless loop)
                failures = 0 if delivered else failures + 1
            except (httpx2.HTTPError, UpstreamAuthError) as exc:
                failures += 1
                _log.debug("[%s] the GET stream dropped: %r", self.server, exc)
            # dropped or ended: reopen, resuming after the last event, later each time in vain
            await trio.sleep(min(MAX_RETRY, delay * 2 ** max(0, failures - 1)))
        if failures >= _GET_RETRIES:
            _log.info("[%s] its GET stream keeps ending: not reopened (calls still work)", self.server)

    async def _deliver(self, message: bytes) -> None:
        self._remember_version(message)
        await super()._deliver(message)

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

    async def terminate(self) -> None:
        """End the session on the server (DELETE), as the protocol asks of a client that leaves."""
        self._end(self._reason)
        if self._session_id is None or self._endpoint is not None:
            return
        try:
            await self._client.delete(self.url, headers=self._headers())
        except httpx2.HTTPError as exc:
            _log.debug("[%s] DELETE of the session failed: %r", self.server, exc)
