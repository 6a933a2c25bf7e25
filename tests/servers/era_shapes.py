"""The conformance fixture in one era only: an ASGI middleware in front of the SDK's app (HTTP),
or a filter in front of its stdio streams, refusing the other era the way a server of one era
does.

- ``legacy``: a server that predates 2026-07-28. ``server/discover`` is a method it does not
  know (-32601), and a request in the 2026-07-28 envelope (its ``MCP-Protocol-Version`` header,
  or the envelope's ``_meta`` on stdio) is one it cannot read (400).
- ``modern``: a server of 2026-07-28 only. ``initialize`` is refused with
  UnsupportedProtocolVersion naming the versions it speaks (HTTP 400, as the spec has it), and
  the legacy session's GET stream and DELETE are not offered (405).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

MODERN = "2026-07-28"


class OneEra:
    def __init__(self, app: App, era: str) -> None:
        assert era in ("legacy", "modern")
        self.app = app
        self.era = era

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        method = scope["method"]
        if self.era == "modern" and method in ("GET", "DELETE"):
            await _answer(send, 405, None)
            return
        if method != "POST":
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        refusal = self._refusal(body, headers)
        if refusal is not None:
            await _answer(send, *refusal)
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _refusal(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]] | None:
        try:
            request = json.loads(body)
        except ValueError:
            return None
        if not isinstance(request, dict):
            return None
        return refusal(request, self.era, headers.get("mcp-protocol-version") == MODERN)


def refusal(request: dict[str, Any], era: str, modern: bool) -> tuple[int, dict[str, Any]] | None:
    """(HTTP status, JSON-RPC error) for a request a server of ``era`` alone refuses; ``modern``:
    it came in the 2026-07-28 envelope."""
    rpc = request.get("method")
    request_id = request.get("id")
    if rpc is None or "id" not in request:
        return None
    if era == "legacy":
        if rpc == "server/discover":
            return 200, _error(request_id, -32601, "Method not found: server/discover")
        if modern:
            return 400, _error(request_id, -32600, f"this server does not speak MCP {MODERN}")
        return None
    if rpc == "initialize":
        data = {"supported": [MODERN], "requested": (request.get("params") or {}).get("protocolVersion")}
        return 400, _error(request_id, -32022, "Unsupported protocol version", data)
    return None


async def serve_stdio(server: Any, era: str) -> None:
    """``server`` (an ``MCPServer``) on stdio, refusing the other era."""
    import anyio
    from mcp import types
    from mcp.server.stdio import stdio_server
    from mcp.shared.message import SessionMessage

    lowlevel = server._lowlevel_server
    async with stdio_server() as (read, write):
        inner_send, inner_read = anyio.create_memory_object_stream[Any](0)

        async def sieve() -> None:
            async with inner_send:
                async for item in read:
                    message = getattr(item, "message", None)
                    raw = (
                        message.model_dump(by_alias=True, exclude_unset=True) if message is not None else None
                    )
                    params = raw.get("params") if isinstance(raw, dict) else None
                    meta = params.get("_meta") if isinstance(params, dict) else None
                    enveloped = (
                        isinstance(meta, dict)
                        and meta.get("io.modelcontextprotocol/protocolVersion") == MODERN
                    )
                    refused = refusal(raw, era, enveloped) if isinstance(raw, dict) else None
                    if refused is None:
                        await inner_send.send(item)
                        continue
                    answer = types.jsonrpc_message_adapter.validate_python(refused[1], by_name=False)
                    await write.send(SessionMessage(answer))

        async with anyio.create_task_group() as group:
            group.start_soon(sieve)
            await lowlevel.run(inner_read, write, lowlevel.create_initialization_options())
            group.cancel_scope.cancel()


def _error(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


async def _answer(send: Send, status: int, payload: dict[str, Any] | None) -> None:
    body = json.dumps(payload).encode() if payload is not None else b""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
