"""The listener's ASGI application: one MCP endpoint (``proxy.http.path``) and ``/healthz``.

POST carries one JSON-RPC message. A 2026-07-28 request (its ``_meta`` names the protocol
version) stands alone and is served by ``modern.py``; anything else belongs to a legacy
session: ``initialize`` opens one (``Mcp-Session-Id`` in the answer), every later message
names it. A request is answered on an SSE stream when the client accepts one (progress,
sampling and log messages come on it before the answer), else as JSON; a notification or a
response gets 202. GET opens (or resumes, with ``Last-Event-ID``) a session's stream for
messages no request carries; DELETE ends the session. A refusal is an HTTP status with a
JSON-RPC error body, never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Any, Final
from urllib.parse import parse_qs

import msgspec
import trio

from watchgate.errors import JsonRpcError, PeerGone
from watchgate.gateway.tree import Gateway
from watchgate.listeners.http.asgi import (
    Receive,
    Scope,
    Send,
    error_body,
    headers_of,
    read_body,
    respond,
    serve_events,
    sse_event,
    unless_gone,
)
from watchgate.listeners.http.console import PREFIX as CONSOLE
from watchgate.listeners.http.console import Console
from watchgate.listeners.http.guard import Refusal, RequestGuard
from watchgate.listeners.http.health import health_report
from watchgate.listeners.http.modern import ModernRequests, is_modern
from watchgate.listeners.http.overdue import Overdue
from watchgate.listeners.http.resource import ResourceServer
from watchgate.listeners.http.session import DuplicateRequestId, HttpSession
from watchgate.listeners.http.sessions import SessionTable
from watchgate.listeners.http.streams import EventLog, event_id, parse_event_id
from watchgate.protocol import eras, jsonrpc
from watchgate.protocol.identity import Principal
from watchgate.protocol.jsonrpc import Kind

__all__ = ["McpHttpApp"]

_log = logging.getLogger("watchgate.http")
_SESSION = "mcp-session-id"
_PRIMING_SINCE = "2025-11-25"  # clients of this revision on take an empty event that primes resumption
#: seconds a session's request waits for its answer to send it as JSON; a longer call gets a
#: primed stream, so a client whose connection drops can resume it (Last-Event-ID)
JSON_WINDOW = 0.2


#: POSTs whose body may be on its way at once; past it a POST is refused at once (503) rather
#: than left holding a socket: a flood of slow bodies cannot exhaust the gateway's descriptors.
MAX_BODIES_IN_TRANSIT: Final = 256


_METADATA: Final = "/.well-known/oauth-protected-resource"


class McpHttpApp:
    def __init__(
        self,
        gateway: Gateway,
        path: str,
        guard: RequestGuard,
        sessions: SessionTable,
        modern: ModernRequests,
        resource: ResourceServer | None = None,
        console: Console | None = None,
    ) -> None:
        self._gateway = gateway
        self.console = console  # the web console at /console (listeners/http/console/)
        self._path = path
        self._guard = guard
        self._sessions = sessions
        self._modern = modern
        self.draining = False  # shutting down: nothing new is taken
        self.resource = resource  # OAuth 2.1 resource server (auth.oauth), or None
        self.bodies_in_transit = 0  # POSTs whose body is still on its way

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":  # a WebSocket upgrade: not an MCP transport here
            await send({"type": "websocket.close", "code": 1003})
            return
        path = scope["path"]
        headers = headers_of(scope)
        try:
            self._guard.check_host(headers)
        except Refusal as refusal:
            await respond(send, refusal.status, error_body(str(refusal), refusal.code))
            return
        if self.resource is not None and path in self._metadata_paths() and scope["method"] == "GET":
            await respond(send, 200, jsonrpc.encode_value(self.resource.metadata()))
            return
        if self.console is not None and (path == CONSOLE or path.startswith(CONSOLE + "/")):
            await self.console(scope, receive, send)
            return
        if path == "/healthz" and scope["method"] in ("GET", "HEAD"):
            status, body = health_report(self._gateway)
            await respond(send, status, body)
            return
        if path != self._path:
            await respond(send, 404, error_body(f"no MCP endpoint at {path}; it is at {self._path}"))
            return
        try:
            await self._endpoint(scope, receive, send, headers)
        except Refusal as refusal:
            extra = self._challenge(refusal, headers)
            if refusal.status == 405:
                extra.append((b"allow", b"GET, POST, DELETE"))
            await respond(send, refusal.status, error_body(str(refusal), refusal.code), headers=extra)

    def set_resource(self, url: str) -> None:
        """The listener's own URL, once it listens: the audience of its tokens unless configured."""
        if self.resource is not None and not self.resource.resource:
            self.resource.resource = url

    def _metadata_paths(self) -> tuple[str, str]:
        return (_METADATA, _METADATA + self._path)

    def _challenge(self, refusal: Refusal, headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
        """``WWW-Authenticate`` for a 401 (and a 403 for a missing scope): where the resource
        metadata is, so an MCP client can sign its user in by itself."""
        if refusal.status not in (401, 403):
            return []
        if self.resource is None:
            return [(b"www-authenticate", b'Bearer realm="watchgate"')] if refusal.status == 401 else []
        base = self.resource.resource.removesuffix(self._path)
        url = base + _METADATA + self._path
        if refusal.status == 403 and "insufficient_scope" not in str(refusal):
            return []
        error = (
            "insufficient_scope"
            if refusal.status == 403
            else ("invalid_token" if headers.get("authorization") else None)
        )
        return [(b"www-authenticate", self.resource.challenge(url, error))]

    async def _endpoint(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]) -> None:
        if b"access_token=" in bytes(scope.get("query_string", b"")):
            raise Refusal(401, "a token in the URL is refused: send it as Authorization: Bearer")
        caller = self._guard.check(headers)
        if caller is None:
            assert self.resource is not None
            caller = await self.resource.principal(headers.get("authorization", "").partition(" ")[2].strip())
        if self.draining:
            raise Refusal(503, "Watchgate is shutting down", -32003)
        method = scope["method"]
        if method == "POST":
            await self._post(scope, receive, send, headers, caller)
        elif method == "GET":
            await self._get(receive, send, headers, caller)
        elif method == "DELETE":
            await self._delete(send, headers, caller)
        else:
            raise Refusal(405, f"{method} is not supported here: use POST, GET or DELETE")

    # --- POST ------------------------------------------------------------------------------------
    async def _post(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], caller: Principal
    ) -> None:
        stream_ok = self._guard.check_post(headers)
        if self.bodies_in_transit >= MAX_BODIES_IN_TRANSIT:  # slow senders cannot take every socket
            raise Refusal(503, "too many requests are still sending their bodies; try again shortly")
        self.bodies_in_transit += 1
        try:
            body = await read_body(receive, self._guard.max_body)
        finally:
            self.bodies_in_transit -= 1
        try:
            msg = jsonrpc.decode(body, check_utf8=True)
        except jsonrpc.InvalidRequest as exc:
            await respond(send, 400, error_body(exc.message, exc.code, exc.request_id))
            return
        except JsonRpcError as exc:
            await respond(send, 400, error_body(exc.message, exc.code))
            return
        profile = self._profile(scope, headers)
        if is_modern(msg, headers):
            if _SESSION in headers:  # a session's profile must not be stepped around by one request
                raise Refusal(
                    400,
                    "a 2026-07-28 request belongs to no session: send it without Mcp-Session-Id "
                    "(or without the 2026-07-28 _meta, as part of the session)",
                    jsonrpc.INVALID_REQUEST,
                )
            await self._modern.serve(
                msg,
                body,
                receive,
                send,
                headers,
                stream_ok=stream_ok,
                peer=_peer(scope),
                profile=profile,
                principal=caller,
            )
            return
        session = await self._session_for(msg, headers, _peer(scope), profile, caller)
        if msg.kind is not Kind.REQUEST:
            try:
                await session.post(body)
            except PeerGone:
                raise Refusal(404, "the session has ended; initialize a new one") from None
            await respond(send, 202, headers=_session_header(session))
            return
        if msg.method == "initialize":
            session.protocol_version = _requested_version(msg)
        try:
            log = await session.post_request(msg, body)
        except DuplicateRequestId:
            raise Refusal(400, f"request id {msg.id!r} is already in flight in this session") from None
        except PeerGone:
            raise Refusal(404, "the session has ended; initialize a new one") from None
        if stream_ok:
            await self._stream(
                session, log, 0, receive, send, headers=_session_header(session), json_first=True
            )
        else:
            await respond(send, 200, await _answer_in(log), headers=_session_header(session))

    def _profile(self, scope: Scope, headers: dict[str, str]) -> str | None:
        """The profile a client chose: ``?profile=NAME`` on the endpoint, or a ``Watchgate-Profile``
        header (a legacy session keeps the one its initialize named)."""
        query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
        profile = query.get("profile", [None])[-1] or headers.get("watchgate-profile")
        if profile is not None and not self._gateway.has_profile(profile):
            raise Refusal(400, self._gateway.unknown_profile(profile), jsonrpc.INVALID_PARAMS)
        return profile

    async def _session_for(
        self, msg: jsonrpc.Message, headers: dict[str, str], peer: str, profile: str | None, caller: Principal
    ) -> HttpSession:
        session_id = headers.get(_SESSION)
        if session_id is None:
            if msg.method != "initialize":
                raise Refusal(
                    400,
                    "no Mcp-Session-Id: send initialize first (2025-11-25), or give every request "
                    "_meta io.modelcontextprotocol/protocolVersion (2026-07-28)",
                )
            refused = self._sessions.make_room(peer)
            if refused is not None:
                raise Refusal(503, refused)
            return await self._sessions.open(peer, profile, caller)
        session = self._existing(headers, caller)
        version = headers.get("mcp-protocol-version")
        if version is not None and version not in eras.LEGACY_VERSIONS:
            raise Refusal(400, f"unsupported MCP-Protocol-Version {version!r} for a session")
        return session

    async def _stream(
        self,
        session: HttpSession,
        log: EventLog,
        after: int,
        receive: Receive,
        send: Send,
        *,
        headers: list[tuple[bytes, bytes]],
        resumed: bool = False,
        json_first: bool = False,
    ) -> None:
        """Serve ``log`` from after ``after``; a drop leaves it for a resumption (not a cancel).

        ``json_first``: an answer that comes before anything else, within `JSON_WINDOW`, is sent
        as JSON (the spec lets the server choose, per request): no stream to frame, prime and
        close, which is most of what a call costs the listener. A call that sends something
        first, or takes longer, gets the primed stream it can resume after a drop. The log is
        read meanwhile, so a server's question during the call still goes there."""
        session.reading(log, True)
        try:
            if json_first:
                settled = await _answered_first(log, receive, self._sessions.overdue)
                if settled is None:
                    return  # the client left before anything came (not a cancel in this era)
                if settled:
                    await respond(send, 200, await _answer_in(log), headers=headers)
                    return
            events = self._events(session, log, after, prime=not resumed)
            await serve_events(send, receive, events, headers=headers)
        finally:
            session.reading(log, False)

    async def _events(
        self, session: HttpSession, log: EventLog, after: int, *, prime: bool
    ) -> AsyncGenerator[bytes, None]:
        if prime and (session.protocol_version or "") >= _PRIMING_SINCE:
            yield sse_event(b"", event_id(log.number, after))  # an id to resume from, no message
        async for seq, data in log.read_after(after):
            yield sse_event(data, event_id(log.number, seq))

    # --- GET and DELETE --------------------------------------------------------------------------
    async def _get(self, receive: Receive, send: Send, headers: dict[str, str], caller: Principal) -> None:
        if "text/event-stream" not in headers.get("accept", ""):
            raise Refusal(406, "GET opens an SSE stream: Accept must include text/event-stream")
        session = self._existing(headers, caller)
        log, after = session.standalone, session.standalone.undelivered
        last = headers.get("last-event-id")
        resumed = last is not None
        if last is not None:
            position = parse_event_id(last)
            earlier = session.stream(position[0]) if position is not None else None
            if position is None or earlier is None or not earlier.knows(position[1]):
                raise Refusal(404, f"cannot resume after event {last!r}: it is gone")
            log, after = earlier, position[1]
        if log.reading:
            raise Refusal(409, "this stream is already being read; one reader at a time")
        await self._stream(
            session, log, after, receive, send, headers=_session_header(session), resumed=resumed
        )

    async def _delete(self, send: Send, headers: dict[str, str], caller: Principal) -> None:
        session = self._existing(headers, caller)
        session.end()
        await respond(send, 204)

    def _existing(self, headers: dict[str, str], caller: Principal) -> HttpSession:
        """The session the request names; it belongs to whoever opened it: another caller's
        token on it (its POSTs, its GET stream, its DELETE) is refused."""
        session_id = headers.get(_SESSION)
        if session_id is None:
            raise Refusal(400, "Mcp-Session-Id is required")
        session = self._sessions.get(session_id)
        if session is None:
            raise Refusal(404, "unknown or expired session; initialize a new one")
        if session.principal != caller:
            raise Refusal(403, "this session belongs to another caller")
        return session


async def _answered_first(log: EventLog, receive: Receive, overdue: Overdue) -> bool | None:
    """Whether the request's answer came first and within `JSON_WINDOW`; None if the client left."""
    try:
        return await unless_gone(receive, log, log.settled, overdue, within=JSON_WINDOW)
    except trio.TooSlowError:
        return False


async def _answer_in(log: EventLog) -> bytes:
    """The last event of a request's log: its answer (the rest went nowhere: no stream)."""
    return await log.answer() or error_body("the session ended before the request was answered", -32003)


def _session_header(session: HttpSession) -> list[tuple[bytes, bytes]]:
    assert session.id is not None
    return [(b"mcp-session-id", session.id.encode())]


def _requested_version(msg: jsonrpc.Message) -> str | None:
    try:
        params: Any = jsonrpc.load(msg.params)
    except msgspec.DecodeError:
        return None
    version = params.get("protocolVersion") if isinstance(params, dict) else None
    return version if isinstance(version, str) else None


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return f"http {client[0]}:{client[1]}" if client else "http"


async def _lifespan(receive: Receive, send: Send) -> None:
    """The listener's lifetime is its owner's: startup and shutdown are acknowledged, nothing more."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
