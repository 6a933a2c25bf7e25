"""Clients of the 2026-07-28 revision over HTTP: every request stands alone (design.md §5).

The transport's part is checked here: the headers must mirror the body (``MCP-Protocol-Version``,
``Mcp-Method``, ``Mcp-Name``: else 400 with HeaderMismatch -32020), a broken ``_meta`` rule is
400 too (-32022 with the supported versions, -32602), an unknown method 404 with -32601. The
rest is the client actor's, as for a 2026-07-28 client on stdio (``protocol/eras.py``): each
request is a session of one request, with a client actor of its own (no state shared with any
other caller) that drops the client's connection-owned ``_meta`` keys toward the servers and
gives every result its ``resultType`` (and cacheable ones ``ttlMs``/``cacheScope``). Closing
the response stream *is* the cancellation: the session ends, and its request is cancelled
upstream. ``subscriptions/listen`` is ``listen.py``'s.
"""

from __future__ import annotations

import base64
import contextlib
import math
from collections.abc import AsyncGenerator
from typing import Any, Final

from watchgate.errors import JsonRpcError, PeerGone
from watchgate.gateway.tree import Gateway, OneRequest
from watchgate.listeners.http.asgi import (
    Receive,
    Send,
    error_body,
    respond,
    serve_events,
    sse_event,
    unless_gone,
)
from watchgate.listeners.http.guard import Refusal
from watchgate.listeners.http.listen import serve_listen
from watchgate.listeners.http.overdue import Overdue
from watchgate.listeners.http.request import RequestChannel
from watchgate.listeners.http.sessions import SessionTable
from watchgate.listeners.http.streams import EventLog
from watchgate.protocol import eras, jsonrpc
from watchgate.protocol.identity import ANONYMOUS, Principal
from watchgate.protocol.jsonrpc import Kind

__all__ = ["ModernRequests", "is_modern"]

HEADER_MISMATCH: Final = -32020
MISSING_REQUIRED_CLIENT_CAPABILITY: Final = -32021
_MISSING_CAPABILITY: Final = b"-32021"  # the cheap test before the answer is decoded
RATE_LIMITED: Final = -32012  # the gateway's access rules (gateway/router/access.py)
_RATE_LIMITED: Final = b"-32012"
#: what a 2026-07-28 client may ask the gateway; anything else is 404 + -32601
_METHODS: Final = frozenset(
    {
        "server/discover",
        "subscriptions/listen",
        "tools/list",
        "tools/call",
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "completion/complete",
    }
)
_MAY_PROGRESS: Final = frozenset({"tools/call", "prompts/get", "resources/read", "completion/complete"})


def is_modern(msg: jsonrpc.Message, headers: dict[str, str]) -> bool:
    """A 2026-07-28 message: its ``_meta`` names a version, or its header names a modern one."""
    if msg.method == "server/discover":
        return True
    version = headers.get("mcp-protocol-version")
    if version is not None and version not in eras.LEGACY_VERSIONS and "mcp-session-id" not in headers:
        return True
    return msg.kind is Kind.REQUEST and eras.modern_version(eras.params_of(msg)) is not None


def _decoded_header(value: str) -> str:
    """``=?base64?…?=`` values (non-ASCII names) decoded before comparing."""
    if value.startswith("=?base64?") and value.endswith("?="):
        try:
            return base64.b64decode(value[9:-2], validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            message = "Header mismatch: a base64 header value is malformed"
            raise Refusal(400, message, HEADER_MISMATCH) from None
    return value


def check_headers(msg: jsonrpc.Message, params: dict[str, Any] | None, headers: dict[str, str]) -> None:
    """The revision's Server Validation of the headers against the body; `Refusal` names the
    first rule broken."""
    header = headers.get("mcp-protocol-version")
    if header is None:
        raise Refusal(400, "Header mismatch: MCP-Protocol-Version is required", HEADER_MISMATCH)
    version = eras.modern_version(params)
    if isinstance(version, str) and header != version:
        message = f"Header mismatch: MCP-Protocol-Version {header!r} does not match _meta version {version!r}"
        raise Refusal(400, message, HEADER_MISMATCH)
    method_header = headers.get("mcp-method")
    if method_header != msg.method:
        message = f"Header mismatch: Mcp-Method {method_header!r} does not match {msg.method!r}"
        raise Refusal(400, message, HEADER_MISMATCH)
    key = eras.NAMED_PARAM.get(msg.method) if isinstance(msg.method, str) else None
    if key is not None and params is not None:
        name = headers.get("mcp-name")
        if name is None or _decoded_header(name) != params.get(key):
            message = f"Header mismatch: Mcp-Name {name!r} does not match params.{key}"
            raise Refusal(400, message, HEADER_MISMATCH)


class ModernRequests:
    def __init__(self, gateway: Gateway, sessions: SessionTable) -> None:
        """``sessions``: where a request's client actor runs, so a call parked on
        ``input_required`` outlives the HTTP request that started it."""
        self._gateway = gateway
        self._sessions = sessions
        self._parked: dict[str, RequestChannel] = {}  # requestState -> the channel of its call

    async def serve(
        self,
        msg: jsonrpc.Message,
        line: bytes,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        *,
        stream_ok: bool,
        peer: str = "http",
        profile: str | None = None,
        principal: Principal = ANONYMOUS,
    ) -> None:
        if msg.kind is not Kind.REQUEST:
            raise Refusal(400, "a 2026-07-28 client sends requests only (closing a stream cancels it)")
        assert isinstance(msg.id, int | str) and isinstance(msg.method, str)
        params = eras.params_of(msg)
        try:
            check_headers(msg, params, headers)
            eras.check_meta(params)
        except Refusal as refusal:
            await respond(send, refusal.status, error_body(str(refusal), refusal.code, msg.id))
            return
        except JsonRpcError as exc:
            await respond(send, 400, jsonrpc.encode(jsonrpc.error_response(msg.id, exc)))
            return
        assert params is not None
        if msg.method not in _METHODS:
            await respond(send, 404, error_body(f"method not found: {msg.method}", -32601, msg.id))
            return
        if msg.method == "subscriptions/listen":
            await serve_listen(self._gateway, msg, line, peer, receive, send, principal)
            return
        state = params.get("requestState")
        client: OneRequest | None = None
        if eras.is_round_state(state):  # the retry of a call this process parked (gateway/era/)
            session = self._parked.pop(state, None)
            if session is None:
                message = (
                    "requestState is unknown or expired (it belongs to the gateway process that "
                    "issued it): send the request again without it"
                )
                await respond(send, 400, error_body(message, jsonrpc.INVALID_PARAMS, msg.id))
                return
            try:  # its client actor runs (OneRequest.keep): the retry is read from its channel
                log = await session.post_request(msg, line)
            except PeerGone:  # the actor ended (its parked call expired, or the gateway stops)
                await respond(send, 503, error_body("the gateway is shutting down", -32003, msg.id))
                return
        else:  # a new call, or a retry carrying a 2026-07-28 server's own requestState (passed on)
            session = RequestChannel()
            client = self._gateway.one_request(session, profile=profile, peer=peer, principal=principal)
            log = session.expect(msg)
        try:
            overdue = self._sessions.overdue
            if client is not None:
                await client.take(line)  # read in this task: no task of its own unless it parks
            # a call that sends progress before its answer gets a stream; an answer that comes
            # first, and discover and lists always, come as JSON (its status can say what it is)
            if not stream_ok or msg.method not in _MAY_PROGRESS:
                await _answer_as_json(log, receive, send, overdue)
            elif (settled := await unless_gone(receive, log, log.settled, overdue)) is None:
                pass  # the client left before anything came: its request is cancelled below
            elif settled:
                await _answer_as_json(log, receive, send, overdue)
            else:
                await serve_events(send, receive, _events(log))
        finally:
            parked_on = session.parked_on if log.complete else None  # the call waits for the retry
            if parked_on is not None and (
                client is None or self._sessions.spawn(self._keep, session, client)
            ):
                self._parked[parked_on] = session
            else:  # answered, or the client left (or the listener stops): this request is over
                session.end()
                if client is not None:
                    await client.end()

    async def _keep(self, session: RequestChannel, client: OneRequest) -> None:
        """A parked call's client actor: it ends with the retry's answer, or when the call
        expires (or the listener stops)."""
        try:
            await client.keep()
        finally:
            session.end()
            if session.parked_on is not None and self._parked.get(session.parked_on) is session:
                del self._parked[session.parked_on]


async def _events(log: EventLog) -> AsyncGenerator[bytes, None]:
    async for _, data in log.read_after(0):
        yield sse_event(data, None)


async def _answer_as_json(log: EventLog, receive: Receive, send: Send, overdue: Overdue) -> None:
    """Wait for the answer while watching the client: one that leaves cancels its request."""
    answer = await unless_gone(receive, log, log.answer_now, overdue)
    if not answer:
        return  # the client went away: nobody to answer
    with contextlib.suppress(OSError):
        status = _status_of(answer)
        retry = _retry_after(answer) if status == 429 else None
        await respond(send, status, answer, headers=[(b"retry-after", retry)] if retry else None)


def _status_of(answer: bytes) -> int:
    """The HTTP status an answer goes with: 400 for MissingRequiredClientCapability (the spec's
    rule for HTTP), 429 for the gateway's rate limit, 200 for everything else (a JSON-RPC error
    is an answer too)."""
    if _MISSING_CAPABILITY not in answer and _RATE_LIMITED not in answer:
        return 200
    code = jsonrpc.error_code(jsonrpc.decode(answer))
    return {MISSING_REQUIRED_CLIENT_CAPABILITY: 400, RATE_LIMITED: 429}.get(code or 0, 200)


def _retry_after(answer: bytes) -> bytes | None:
    """``Retry-After`` (whole seconds, rounded up) from a rate-limit answer's ``retryAfter``."""
    error = jsonrpc.load(jsonrpc.decode(answer).error)
    extra = error.get("data") if isinstance(error, dict) else None
    wait = extra.get("retryAfter") if isinstance(extra, dict) else None
    return str(math.ceil(wait)).encode() if isinstance(wait, int | float) else None
