"""What an upstream actor says on the wire beyond forwarding: its cancellations, the progress
tokens it swaps, the errors it reads back, and the requests a server sends to clients."""

from __future__ import annotations

import logging
from typing import Any, Final

import msgspec

from watchgate.errors import JsonRpcError
from watchgate.gateway.ports import ClientPort
from watchgate.protocol import jsonrpc
from watchgate.protocol.jsonrpc import Line, Message, RequestId

_log = logging.getLogger("watchgate.upstream")


def cancel_line(request_id: int, reason: str | None) -> Line:
    params: dict[str, Any] = {"requestId": request_id}
    if reason:
        params["reason"] = reason
    return jsonrpc.encode_line(jsonrpc.notification("notifications/cancelled", params))


def swap_progress_token(
    request: Message, gateway_id: int, fields: dict[str, msgspec.Raw] | None = None
) -> tuple[Any, msgspec.Raw]:
    """Replace the client's progress token with the gateway id; return the client's and new params.
    ``fields``: the top level of ``request.params`` if the router decoded it already (not changed)."""
    fields = dict(fields) if fields is not None else jsonrpc.params_fields(request)
    meta = msgspec.json.decode(fields["_meta"]) if "_meta" in fields else {}
    if not isinstance(meta, dict) or "progressToken" not in meta:
        return None, request.params  # type: ignore[return-value]
    token = meta["progressToken"]
    meta["progressToken"] = gateway_id
    fields["_meta"] = jsonrpc.raw(meta)
    return token, jsonrpc.raw_fields(fields)


def error_from(msg: Message) -> JsonRpcError:
    """An upstream's error response as an exception, for the gateway's own calls."""
    body = jsonrpc.load(msg.error)
    if isinstance(body, dict):
        code = body.get("code")
        return JsonRpcError(
            code if isinstance(code, int) else jsonrpc.INTERNAL_ERROR,
            str(body.get("message", "upstream error")),
            body.get("data"),
        )
    return JsonRpcError(jsonrpc.INTERNAL_ERROR, "upstream returned a malformed error")


def as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def describe_server(result: dict[str, Any]) -> str:
    """``name version`` from an ``initialize`` result, for the log."""
    info = as_dict(result.get("serverInfo"))
    return f"{info.get('name', '?')} {info.get('version', '')}".strip()


_CLIENT_CAPABILITY: Final = {
    "sampling/createMessage": "sampling",
    "elicitation/create": "elicitation",
    "roots/list": "roots",
}


def cannot_ask(server: str, method: str, client: ClientPort | None) -> JsonRpcError | None:
    """Why a server's request cannot go to ``client`` (the one whose request is most recently
    in flight on that server), or None if it can: it must be a client request MCP defines and
    the client must have declared the capability."""
    capability = _CLIENT_CAPABILITY.get(method)
    if client is not None and capability is not None and capability in client.capabilities:
        return None
    why = (
        f"no client with the {capability!r} capability has a request in flight on {server!r}"
        if capability
        else f"{method!r} is not a request the gateway forwards to clients"
    )
    return JsonRpcError(jsonrpc.METHOD_NOT_FOUND, why)


class ServerRequests:
    """Requests a server sent to clients (sampling, elicitation, roots), by the id the client
    saw: which client was asked, and the server's own id to answer under."""

    def __init__(self, server: str) -> None:
        self._server = server
        self._asked: dict[str, tuple[ClientPort, RequestId]] = {}
        self._count = 0

    def open(self, client: ClientPort, upstream_id: RequestId) -> str:
        """Record a request for ``client``; return the id it is sent under (unique per server)."""
        self._count += 1
        request_id = f"wg-{self._server}-{self._count}"
        self._asked[request_id] = (client, upstream_id)
        return request_id

    def answered(self, request_id: str) -> RequestId | None:
        """The server's id for the client's answer to ``request_id``; None if not (or no longer) open."""
        entry = self._asked.pop(request_id, None)
        return None if entry is None else entry[1]

    def cancelled(self, upstream_id: object) -> list[tuple[ClientPort, str]]:
        """The server withdrew its request: who was asked, under which id."""
        found = [(client, rid) for rid, (client, their) in self._asked.items() if their == upstream_id]
        for _, request_id in found:
            del self._asked[request_id]
        return found

    def drop_client(self, client_id: int) -> list[RequestId]:
        """A client left: the server's ids of what it was asked and will never answer."""
        gone = [rid for rid, (client, _) in self._asked.items() if client.client_id == client_id]
        return [self._asked.pop(request_id)[1] for request_id in gone]

    def clear(self) -> None:
        """The server's session ended: nobody can answer it any more."""
        for client, upstream_id in self._asked.values():
            _log.debug(
                "[%s] dropping server request %r for client %d", self._server, upstream_id, client.client_id
            )
        self._asked.clear()
