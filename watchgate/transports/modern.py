"""The 2026-07-28 ("modern", stateless) era toward a server over Streamable HTTP.

The upstream actor speaks the ``initialize`` era on its side of the transport seam; a server
that speaks 2026-07-28 has no handshake, no session and no ``ping``, and wants its protocol
version, the client's identity and capabilities in every request's ``_meta`` and mirrored into
headers. The HTTP connection translates, with what this module knows (no I/O here):

- the actor's ``initialize`` becomes a ``server/discover`` probe; its result is answered back as
  an ``initialize`` result (``protocolVersion: 2026-07-28``), so the actor, ``ps`` and the
  clients see one kind of server;
- every request gets ``_meta`` (the gateway's own era keys, never a client's) and the headers
  ``MCP-Protocol-Version``, ``Mcp-Method``, ``Mcp-Name`` and ``Mcp-Param-*`` (from the tool's
  ``x-mcp-header`` annotations, learned from ``tools/list``);
- ``notifications/initialized`` and ``logging/setLevel`` have no meaning there and are answered
  here; ``ping`` becomes ``server/discover`` (the liveness probe still reaches the server);
- a tool whose ``x-mcp-header`` annotations break the spec's rules is left out of ``tools/list``
  with a warning (the spec's "reject the tool definition").

- an ``input_required`` result (MRTR) is answered by the calling client through the requests it
  knows, and retried (``transports/mrtr.py``).

Not yet: ``subscriptions/listen`` (notifications outside a call).
"""

from __future__ import annotations

import base64
import logging
import re
from typing import Any, Final

import msgspec

from watchgate.errors import JsonRpcError
from watchgate.protocol import jsonrpc
from watchgate.protocol.jsonrpc import Kind
from watchgate.transports.mrtr import InputRounds, Retry

__all__ = ["MODERN", "ModernSession", "header_paths", "local_answer", "supported_versions"]

MODERN: Final = "2026-07-28"
_VERSION_KEY: Final = "io.modelcontextprotocol/protocolVersion"
_CLIENT_INFO_KEY: Final = "io.modelcontextprotocol/clientInfo"
_CAPABILITIES_KEY: Final = "io.modelcontextprotocol/clientCapabilities"
_SERVER_INFO_KEY: Final = "io.modelcontextprotocol/serverInfo"
_UNSUPPORTED_VERSION: Final = -32022
_NAMED: Final = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
_TOKEN: Final = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field-name (tchar)
_SAFE_VALUE: Final = re.compile(r"^[\x20-\x7e]*$")
_MAX_SAFE_INTEGER: Final = 2**53 - 1
_ANSWERED_HERE: Final[dict[str, dict[str, Any]]] = {"logging/setLevel": {}}

_log = logging.getLogger("watchgate.upstream")


class ModernSession:
    """What the gateway says of itself on every request, and what it learned of the server."""

    def __init__(self, initialize: dict[str, Any], host: str) -> None:
        self._host = host
        params = initialize.get("params") or {}
        self._meta = {
            _VERSION_KEY: MODERN,
            _CLIENT_INFO_KEY: params.get("clientInfo") or {"name": "watchgate", "version": "0"},
            _CAPABILITIES_KEY: params.get("capabilities") or {},
        }
        self._header_paths: dict[str, dict[str, tuple[str, ...]]] = {}  # tool -> header -> path
        self._pending: dict[Any, str] = {}  # request id -> method, for what the answer teaches
        self.rounds = InputRounds()

    # -- toward the server ----------------------------------------------------------------------

    def discover(self, request_id: Any) -> tuple[bytes, dict[str, str]]:
        message = {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "server/discover",
            "params": {"_meta": self._meta},
        }
        return msgspec.json.encode(message), self._headers("server/discover", {})

    def prepare(self, message: dict[str, Any]) -> tuple[bytes, dict[str, str]] | None:
        """The request or notification as the server wants it, and its headers; None if it has
        no meaning in this era (the caller answers it with `local_answer`, or drops it)."""
        method = message.get("method")
        if not isinstance(method, str) or method == "notifications/initialized" or method in _ANSWERED_HERE:
            return None
        if method == "ping":  # no ping in this era: the probe asks server/discover instead
            method = message["method"] = "server/discover"
        params = message.get("params")
        params = dict(params) if isinstance(params, dict) else {}
        meta = dict(params.get("_meta") or {})
        meta.update(self._meta)
        params["_meta"] = meta
        message["params"] = params
        if "id" in message:
            self._pending[message["id"]] = method
            self.rounds.sent(message)
        return msgspec.json.encode(message), self._headers(method, params)

    def _headers(self, method: str, params: dict[str, Any]) -> dict[str, str]:
        headers = {"mcp-protocol-version": MODERN, "mcp-method": method}
        named = _NAMED.get(method)
        if named is not None and isinstance(params.get(named), str):
            headers["mcp-name"] = _header_value(params[named])
        if method == "tools/call":
            arguments = params.get("arguments")
            for header, path in self._header_paths.get(str(params.get("name")), {}).items():
                value = _at(arguments, path)
                if value is not None:
                    headers[f"mcp-param-{header}"] = _header_value(value)
        return headers

    # -- from the server -------------------------------------------------------------------------

    @staticmethod
    def initialize_result(discovered: dict[str, Any]) -> dict[str, Any]:
        """``server/discover``'s result, as the ``initialize`` result the actor expects."""
        meta = discovered.get("_meta")
        meta = meta if isinstance(meta, dict) else {}
        result: dict[str, Any] = {
            "protocolVersion": MODERN,
            "capabilities": discovered.get("capabilities") or {},
            "serverInfo": discovered.get("serverInfo") or meta.get(_SERVER_INFO_KEY) or {},
        }
        if isinstance(discovered.get("instructions"), str):
            result["instructions"] = discovered["instructions"]
        return result

    def receive(self, message: bytes) -> tuple[list[bytes], Retry | None]:
        """An answer from the server: what to hand the actor, and a request to send again.

        ``tools/list`` teaches the header annotations (a tool that breaks their rules is left
        out); an ``input_required`` result becomes input requests for the client, or a retry
        (``transports/mrtr.py``); a retry's answer gets the actor's id back."""
        try:
            envelope = jsonrpc.decode(message)  # the id and kind only: results stay raw
        except JsonRpcError:
            return [message], None
        if envelope.kind is not Kind.RESPONSE:
            return [message], None
        answered_id = envelope.id
        method = self._pending.pop(answered_id, None)
        if method != "tools/list" and not self.rounds.concerns(answered_id, message):
            return [message], None  # nothing to learn or translate: passed on as it came
        decoded = msgspec.json.decode(message)
        outcome = self.rounds.answered(decoded)
        if isinstance(outcome, Retry):
            return [], outcome
        if outcome is not None:
            return [msgspec.json.encode(ask) for ask in outcome], None
        # a retry's answer (its id set back) or an error the rounds made (too many rounds)
        changed = decoded.get("id") != answered_id or ("error" in decoded and b'"error"' not in message)
        if method == "tools/list":
            changed = self._learn_tools(decoded) or changed
        return [msgspec.json.encode(decoded) if changed else message], None

    def _learn_tools(self, decoded: dict[str, Any]) -> bool:
        """Learn each tool's header annotations; leave out the tools that break their rules."""
        result = decoded.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
            return False
        kept = []
        for tool in result["tools"]:
            if not isinstance(tool, dict):
                continue
            name = str(tool.get("name"))
            try:
                self._header_paths[name] = header_paths(tool.get("inputSchema"))
            except ValueError as exc:
                _log.warning("[%s] tool %r left out: its x-mcp-header %s", self._host, name, exc)
                continue
            kept.append(tool)
        if len(kept) == len(result["tools"]):
            return False
        decoded["result"] = {**result, "tools": kept}
        return True

    def retry(self, retry: Retry) -> tuple[bytes, bytes, dict[str, str]]:
        """The retry of an ``input_required`` request: its line, body and headers."""
        message = retry.message
        self._pending[message["id"]] = message["method"]
        body = msgspec.json.encode(message)
        return body, body, self._headers(message["method"], message.get("params") or {})


def local_answer(message: dict[str, Any]) -> bytes | None:
    """The answer to a request this era has no method for (``logging/setLevel``)."""
    if message.get("method") in _ANSWERED_HERE and "id" in message:
        result = _ANSWERED_HERE[message["method"]]
        return msgspec.json.encode({"jsonrpc": "2.0", "id": message["id"], "result": result})
    return None


def supported_versions(body: bytes) -> list[str] | None:
    """The versions an UnsupportedProtocolVersion error lists; None if the body is not one."""
    error = _error_of(body)
    if error is None or error.get("code") != _UNSUPPORTED_VERSION:
        return None
    data = error.get("data")
    supported = data.get("supported") if isinstance(data, dict) else None
    return [v for v in supported if isinstance(v, str)] if isinstance(supported, list) else []


def _error_of(body: bytes) -> dict[str, Any] | None:
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    error = decoded.get("error") if isinstance(decoded, dict) else None
    return error if isinstance(error, dict) else None


def header_paths(schema: Any) -> dict[str, tuple[str, ...]]:
    """Each ``x-mcp-header`` of a tool's input schema and the property path it mirrors.

    Raises ValueError saying which rule an annotation breaks: empty, not a header token,
    not unique (case-insensitively), not on a string/integer/boolean, or not reachable from the
    root through ``properties`` alone."""
    found: dict[str, tuple[str, ...]] = {}
    seen: set[str] = set()

    def walk(node: Any, path: tuple[str, ...], reachable: bool) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, path, False)
            return
        if not isinstance(node, dict):
            return
        if "x-mcp-header" in node:
            header = node["x-mcp-header"]
            if not reachable or not path:
                raise ValueError(
                    f"at {'/'.join(path) or 'the root'} is not reachable through properties alone"
                )
            if not isinstance(header, str) or not header:
                raise ValueError(f"on {'/'.join(path)} is empty")
            if not _TOKEN.match(header):
                raise ValueError(f"{header!r} is not a valid header name")
            if header.lower() in seen:
                raise ValueError(f"{header!r} is not unique")
            if node.get("type") not in ("string", "integer", "boolean"):
                raise ValueError(f"{header!r} is on a {node.get('type')!r}, not a string, integer or boolean")
            seen.add(header.lower())
            found[header] = path
        for key, child in node.items():
            if key == "properties" and isinstance(child, dict):
                for name, sub in child.items():
                    walk(sub, (*path, name), reachable)
            elif key != "x-mcp-header":
                walk(child, path, False)

    walk(schema, (), True)
    return found


def _at(arguments: Any, path: tuple[str, ...]) -> Any:
    node = arguments
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _header_value(value: Any) -> str:
    """A value as a header carries it: plain when it is safe ASCII, else the base64 sentinel."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int) and abs(value) <= _MAX_SAFE_INTEGER:
        text = str(value)
    else:
        text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
    sentinel = text.startswith("=?base64?") and text.endswith("?=")
    if _SAFE_VALUE.match(text) and text == text.strip() and not sentinel:
        return text
    return f"=?base64?{base64.b64encode(text.encode()).decode()}?="
