"""Clients of the 2026-07-28 revision over HTTP: every request stands alone (DESIGN.md section 5).

A request names its protocol version in ``_meta``; the headers must mirror the body
(``MCP-Protocol-Version``, ``Mcp-Method``, ``Mcp-Name``: else 400 with HeaderMismatch
-32020), the version must be one the gateway speaks (else 400 with -32022 and the list). Each
request is then a session of one request: a client actor of its own (no state shared with
any other client), served until its answer is written. Closing the response stream *is* the
cancellation: the session ends, and its request is cancelled upstream.

Toward the servers the client's connection-owned ``_meta`` keys are dropped (each upstream
gets its own era's from its transport); toward the client every result carries
``resultType``, and cacheable ones ``ttlMs``/``cacheScope`` (0 and private: what passes the
gateway's plugins may differ between callers). ``server/discover`` is answered from what
``initialize`` would say: the union of the running upstreams.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncGenerator
from typing import Any, Final

import msgspec
import trio

from watchgate.errors import PeerGone
from watchgate.gateway.tree import Gateway
from watchgate.listeners.http.asgi import (
    Receive,
    Send,
    error_body,
    respond,
    serve_events,
    sse_event,
    until_disconnect,
)
from watchgate.listeners.http.guard import Refusal
from watchgate.listeners.http.listen import serve_listen
from watchgate.listeners.http.session import HttpSession
from watchgate.listeners.http.streams import EventLog
from watchgate.protocol import jsonrpc
from watchgate.protocol.jsonrpc import Kind

__all__ = ["MODERN_VERSIONS", "ModernRequests", "is_modern"]

MODERN_VERSIONS: Final = ("2026-07-28",)
VERSION_KEY: Final = "io.modelcontextprotocol/protocolVersion"
CAPABILITIES_KEY: Final = "io.modelcontextprotocol/clientCapabilities"
_RESERVED_PREFIX: Final = "io.modelcontextprotocol/"
HEADER_MISMATCH: Final = -32020
UNSUPPORTED_VERSION: Final = -32022
_LEGACY_HEADER_VERSIONS: Final = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"})
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
_NAMED: Final = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
_CACHEABLE: Final = frozenset(
    {
        "server/discover",
        "subscriptions/listen",
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
        "resources/read",
    }
)
_params = msgspec.json.Decoder(dict[str, Any])


class _Shape(msgspec.Struct):
    resultType: str | None = None
    ttlMs: int | None = None


_shape = msgspec.json.Decoder(_Shape)


def _params_of(msg: jsonrpc.Message) -> dict[str, Any] | None:
    if msg.params is msgspec.UNSET:
        return {}
    try:
        return _params.decode(msg.params)
    except msgspec.DecodeError:
        return None


def _meta_of(params: dict[str, Any] | None) -> dict[str, Any]:
    meta = params.get("_meta") if params else None
    return meta if isinstance(meta, dict) else {}


def is_modern(msg: jsonrpc.Message, headers: dict[str, str]) -> bool:
    """A 2026-07-28 message: its ``_meta`` names a version, or its header names a modern one."""
    if msg.method == "server/discover":
        return True
    version = headers.get("mcp-protocol-version")
    if version is not None and version not in _LEGACY_HEADER_VERSIONS and "mcp-session-id" not in headers:
        return True
    return msg.kind is Kind.REQUEST and VERSION_KEY in _meta_of(_params_of(msg))


def _decoded_header(value: str) -> str:
    """``=?base64?…?=`` values (non-ASCII names) decoded before comparing."""
    if value.startswith("=?base64?") and value.endswith("?="):
        try:
            return base64.b64decode(value[9:-2], validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            raise Refusal(
                400, "Header mismatch: a base64 header value is malformed", HEADER_MISMATCH
            ) from None
    return value


def validate(msg: jsonrpc.Message, params: dict[str, Any] | None, headers: dict[str, str]) -> None:
    """The rules of the revision's Server Validation; `Refusal` names the first one broken."""
    if params is None:
        raise Refusal(400, "params must be an object", jsonrpc.INVALID_PARAMS)
    meta = _meta_of(params)
    version = meta.get(VERSION_KEY)
    header = headers.get("mcp-protocol-version")
    if header is None:
        raise Refusal(400, "Header mismatch: MCP-Protocol-Version is required", HEADER_MISMATCH)
    if not isinstance(version, str):
        raise Refusal(400, f"_meta {VERSION_KEY} is required in 2026-07-28", jsonrpc.INVALID_PARAMS)
    if header != version:
        raise Refusal(
            400,
            f"Header mismatch: MCP-Protocol-Version {header!r} does not match _meta version {version!r}",
            HEADER_MISMATCH,
        )
    if version not in MODERN_VERSIONS:
        raise _Unsupported(version)
    method_header = headers.get("mcp-method")
    if method_header != msg.method:
        raise Refusal(
            400,
            f"Header mismatch: Mcp-Method {method_header!r} does not match {msg.method!r}",
            HEADER_MISMATCH,
        )
    key = _NAMED.get(msg.method) if isinstance(msg.method, str) else None
    if key is not None:
        name = headers.get("mcp-name")
        if name is None or _decoded_header(name) != params.get(key):
            raise Refusal(
                400, f"Header mismatch: Mcp-Name {name!r} does not match params.{key}", HEADER_MISMATCH
            )
    capabilities = meta.get(CAPABILITIES_KEY)
    if not isinstance(capabilities, dict):
        raise Refusal(400, f"_meta {CAPABILITIES_KEY} is required (an object)", jsonrpc.INVALID_PARAMS)


class _Unsupported(Refusal):
    def __init__(self, version: str) -> None:
        super().__init__(400, f"unsupported protocol version {version!r}", UNSUPPORTED_VERSION)
        self.version = version


def _for_upstream(msg: jsonrpc.Message, params: dict[str, Any]) -> bytes:
    """The request without the client's connection-owned ``_meta`` keys."""
    meta = {k: v for k, v in _meta_of(params).items() if not k.startswith(_RESERVED_PREFIX)}
    rest = {k: v for k, v in params.items() if k != "_meta"}
    if meta:
        rest["_meta"] = meta
    return jsonrpc.encode(msg.with_params(jsonrpc.raw(rest)))


def shaped(line: bytes, method: str) -> bytes:
    """A result as a 2026-07-28 client expects it: ``resultType``, and cache hints where due."""
    msg = jsonrpc.decode(line)
    if msg.result is msgspec.UNSET:
        return line
    result = bytes(msg.result)
    try:
        shape = _shape.decode(result)
    except msgspec.DecodeError:
        return line
    added = b""
    if shape.resultType is None:
        added += b'"resultType":"complete",'
    if method in _CACHEABLE and shape.ttlMs is None and shape.resultType in (None, "complete"):
        added += b'"ttlMs":0,"cacheScope":"private",'
    if not added:
        return line
    body = result.strip()
    inner = body[1:-1].strip()
    new = b"{" + (added + inner if inner else added[:-1]) + b"}"
    return jsonrpc.encode(msg.with_result(msgspec.Raw(new)))


class ModernRequests:
    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    async def serve(
        self,
        msg: jsonrpc.Message,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        *,
        stream_ok: bool,
        peer: str = "http",
    ) -> None:
        if msg.kind is not Kind.REQUEST:
            raise Refusal(400, "a 2026-07-28 client sends requests only (closing a stream cancels it)")
        request_id = msg.id if isinstance(msg.id, int | str) else None
        params = _params_of(msg)
        try:
            validate(msg, params, headers)
        except _Unsupported as exc:
            data = {"supported": list(MODERN_VERSIONS), "requested": exc.version}
            body = msgspec.json.encode(
                {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "error": {"code": exc.code, "message": str(exc), "data": data},
                }
            )
            await respond(send, 400, body)
            return
        except Refusal as refusal:
            await respond(send, refusal.status, error_body(str(refusal), refusal.code, request_id))
            return
        assert params is not None and isinstance(msg.method, str)
        if msg.method not in _METHODS:
            await respond(send, 404, error_body(f"method not found: {msg.method}", -32601, request_id))
            return
        if msg.method == "server/discover":
            await self._discover(msg, receive, send)
            return
        if msg.method == "subscriptions/listen":
            assert isinstance(msg.id, int | str)
            await serve_listen(self._gateway, msg.id, params.get("notifications"), peer, receive, send)
            return
        line = _for_upstream(msg, params)
        await self._call(msg, line, receive, send, stream_ok=stream_ok)

    async def _call(
        self, msg: jsonrpc.Message, line: bytes, receive: Receive, send: Send, *, stream_ok: bool
    ) -> None:
        """One request, one client actor; the stream's end (or the client's) ends both."""
        assert isinstance(msg.method, str)
        method = msg.method
        session = HttpSession(None)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._gateway.serve_channel, session)
            try:
                log = await session.post_request(msg, line)
            except PeerGone:  # pragma: no cover - the actor ended before it read anything
                await respond(send, 503, error_body("the gateway is shutting down", -32003, msg.id))  # type: ignore[arg-type]
                return
            try:
                if stream_ok:
                    await serve_events(send, receive, _events(log, method))
                else:
                    await _answer_as_json(log, method, receive, send)
            finally:
                session.end()  # answered, or the client left: either way this request is over

    async def _discover(self, msg: jsonrpc.Message, receive: Receive, send: Send) -> None:
        probe = jsonrpc.request(
            msg.id if isinstance(msg.id, int | str) else 0,
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "watchgate-discover"},
            },
        )
        session = HttpSession(None)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._gateway.serve_channel, session)
            log = await session.post_request(probe, jsonrpc.encode(probe))
            answer = b""
            async for _, data in log.read_after(0):
                answer = data
            session.end()
        initialized = jsonrpc.decode(answer)
        result = jsonrpc.load(initialized.result)
        discovered: dict[str, Any] = {
            "resultType": "complete",
            "supportedVersions": list(MODERN_VERSIONS),
            "capabilities": result["capabilities"],
            "serverInfo": result["serverInfo"],
            "_meta": {"io.modelcontextprotocol/serverInfo": result["serverInfo"]},
            "ttlMs": 0,
            "cacheScope": "private",
        }
        if "instructions" in result:
            discovered["instructions"] = result["instructions"]
        assert msg.id is not None and msg.id is not msgspec.UNSET
        await respond(send, 200, jsonrpc.encode(jsonrpc.result_response(msg.id, discovered)))


async def _events(log: EventLog, method: str) -> AsyncGenerator[bytes, None]:
    async for _, data in log.read_after(0):
        yield sse_event(shaped(data, method), None)


async def _answer_as_json(log: EventLog, method: str, receive: Receive, send: Send) -> None:
    """Wait for the answer while watching the client: one that leaves cancels its request."""
    answer = b""
    async with until_disconnect(receive):
        async for _, data in log.read_after(0):
            answer = data
    if not answer:
        return  # the client went away: nobody to answer
    with contextlib.suppress(OSError):
        await respond(send, 200, shaped(answer, method))
