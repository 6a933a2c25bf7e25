"""The translation of each message between the ``initialize`` era and the 2026-07-28 era
toward a server (no I/O here: `ModernConnection` drives it, the wires send).

The upstream actor speaks the ``initialize`` era on its side of the transport seam; a server
that speaks 2026-07-28 has no handshake, no session and no ``ping``, and wants its protocol
version, the client's identity and capabilities in every request's ``_meta`` and mirrored into
headers:

- the actor's ``initialize`` becomes a ``server/discover`` probe; its result is answered back as
  an ``initialize`` result (``protocolVersion: 2026-07-28``), so the actor, ``ps`` and the
  clients see one kind of server;
- every request gets ``_meta`` (the gateway's own era keys, never a client's) and the headers
  ``MCP-Protocol-Version``, ``Mcp-Method``, ``Mcp-Name`` and ``Mcp-Param-*`` (from the tool's
  ``x-mcp-header`` annotations, learned from ``tools/list``; a tool whose annotations break
  the spec's rules is left out, with a warning: the spec's "reject the tool definition");
- ``notifications/initialized`` has no meaning there; ``logging/setLevel`` is answered here and
  its level goes in every later request's ``_meta`` (``io.modelcontextprotocol/logLevel``, the
  era's per-request level); ``ping`` becomes ``server/discover`` (the liveness probe still
  reaches the server);
- ``resources/subscribe`` and ``unsubscribe`` are answered here: they change the filter of the
  connection's ``subscriptions/listen`` request, which also carries the list changes the server
  announces, as notifications outside any request;
- an ``input_required`` result (MRTR) is passed through untouched to a calling client of the
  same era (``relay``); a client of the older era answers it through the requests it knows, and
  the connection retries (``_rounds.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from watchgate.errors import JsonRpcError
from watchgate.protocol import eras, jsonrpc
from watchgate.protocol.jsonrpc import Kind
from watchgate.protocol.subscriptions import SUBSCRIPTION_KEY
from watchgate.transports.modern._headers import at, header_paths, header_value
from watchgate.transports.modern._rounds import InputRounds, Retry

__all__ = [
    "MODERN",
    "Cancel",
    "Kept",
    "ModernSession",
    "Send",
    "as_object",
    "supported_versions",
]

MODERN: Final = eras.MODERN_VERSIONS[0]
_ANSWERED_HERE: Final = frozenset({"logging/setLevel", "resources/subscribe", "resources/unsubscribe"})
_LIST_CHANGES: Final = (
    ("tools", "toolsListChanged"),
    ("prompts", "promptsListChanged"),
    ("resources", "resourcesListChanged"),
)
_ACKNOWLEDGED: Final = "notifications/subscriptions/acknowledged"

_log = logging.getLogger("watchgate.upstream")


@dataclass(frozen=True, slots=True)
class Send:
    """A message for the server, as this era wants it: its body and headers, and the id of a
    request (whose call this is: over HTTP, closing its POST cancels it)."""

    body: bytes
    headers: dict[str, str]
    request_id: Any = None


@dataclass(frozen=True, slots=True)
class Kept:
    """A message the connection keeps: ``answer`` is the actor's answer (None: none, or not
    yet); what the listen stream should hear may have changed."""

    answer: bytes | None


@dataclass(frozen=True, slots=True)
class Cancel:
    """``notifications/cancelled`` for ``request_id``: over HTTP the call's POST is closed; on
    stdio the notification is written as it came."""

    request_id: Any


class ModernSession:
    """What the gateway says of itself on every request, and what it learned of the server."""

    def __init__(self, initialize: dict[str, Any], server: str) -> None:
        self._server = server
        params = initialize.get("params") or {}
        self._meta = {
            eras.VERSION_KEY: MODERN,
            eras.CLIENT_INFO_KEY: params.get("clientInfo") or {"name": "watchgate", "version": "0"},
            eras.CAPABILITIES_KEY: params.get("capabilities") or {},
        }
        self._header_paths: dict[str, dict[str, tuple[str, ...]]] = {}  # tool -> header -> path
        self._pending: dict[Any, str] = {}  # request id -> method, for what the answer teaches
        self._relayed: dict[Any, dict[str, Any]] = {}  # request id -> the capabilities of its client
        self.rounds = InputRounds()
        self.capabilities: dict[str, Any] = {}  # what server/discover said the server can do
        self.log_level: str | None = None  # the level logging/setLevel asked for, per request here
        self.subscribed: set[str] = set()  # resource URIs the gateway's clients subscribed to
        self.initialized = False  # the actor's handshake is over: the listen stream may open

    # -- toward the server ----------------------------------------------------------------------

    def relay(self, request_id: Any, capabilities: dict[str, Any]) -> None:
        """The request sent next under ``request_id`` is a 2026-07-28 client's: the server is told
        that client's capabilities (not the gateway's) and its ``input_required`` result goes to
        the client as it came, ``requestState`` untouched; the client's retry comes back as a
        request like any other (design.md §5)."""
        self._relayed[request_id] = capabilities

    def outgoing(self, message: dict[str, Any]) -> Send | Kept | Cancel:
        """What becomes of a message the actor sends (the transports only do the I/O): a client's
        input for an MRTR round completes it into a retry or an answer; a cancellation cancels;
        what this era has no method for is kept (answered here, or noted); the rest is sent."""
        if "method" not in message and self.rounds.owns(message.get("id")):
            outcome = self.rounds.input_given(message)  # an older client's input for a round
            if isinstance(outcome, Retry):
                return self.retry(outcome)
            return Kept(None if outcome is None else msgspec.json.encode(outcome))
        if message.get("method") == "notifications/cancelled":
            params = message.get("params")
            return Cancel(params.get("requestId") if isinstance(params, dict) else None)
        prepared = self.prepare(message)
        if prepared is None:
            return Kept(self.local_answer(message))
        return Send(*prepared, message.get("id"))

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
        if method == "notifications/initialized":
            self.initialized = True
            return None
        if not isinstance(method, str) or method in _ANSWERED_HERE:
            self._note(message)
            return None
        if method == "ping":  # no ping in this era: the probe asks server/discover instead
            method = message["method"] = "server/discover"
        params = message.get("params")
        params = dict(params) if isinstance(params, dict) else {}
        meta = dict(params.get("_meta") or {})
        meta.update(self._meta)
        if self.log_level is not None:
            meta[eras.LOG_LEVEL_KEY] = self.log_level
        relayed = self._relayed.pop(message["id"], None) if "id" in message else None
        if relayed is not None:  # its client answers input_required itself: it says what it can
            meta[eras.CAPABILITIES_KEY] = relayed
        params["_meta"] = meta
        message["params"] = params
        if "id" in message:
            self._pending[message["id"]] = method
            if relayed is None:
                self.rounds.sent(message)
        return msgspec.json.encode(message), self._headers(method, params)

    def _headers(self, method: str, params: dict[str, Any]) -> dict[str, str]:
        headers = {"mcp-protocol-version": MODERN, "mcp-method": method}
        named = eras.NAMED_PARAM.get(method)
        if named is not None and isinstance(params.get(named), str):
            headers["mcp-name"] = header_value(params[named])
        if method == "tools/call":
            arguments = params.get("arguments")
            for header, path in self._header_paths.get(str(params.get("name")), {}).items():
                value = at(arguments, path)
                if value is not None:
                    headers[f"mcp-param-{header}"] = header_value(value)
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
            "serverInfo": discovered.get("serverInfo") or meta.get(eras.SERVER_INFO_KEY) or {},
        }
        if isinstance(discovered.get("instructions"), str):
            result["instructions"] = discovered["instructions"]
        return result

    def receive(self, message: bytes) -> tuple[list[bytes], Retry | None]:
        """An answer from the server: what to hand the actor, and a request to send again.

        ``tools/list`` teaches the header annotations (a tool that breaks their rules is left
        out); an ``input_required`` result becomes input requests for the client, or a retry
        (``_rounds.py``); a retry's answer gets the actor's id back."""
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
                _log.warning("[%s] tool %r left out: its x-mcp-header %s", self._server, name, exc)
                continue
            kept.append(tool)
        if len(kept) == len(result["tools"]):
            return False
        decoded["result"] = {**result, "tools": kept}
        return True

    # -- what this era has no method for ----------------------------------------------------------

    def _note(self, message: dict[str, Any]) -> None:
        params = message.get("params")
        params = params if isinstance(params, dict) else {}
        method, uri = message.get("method"), params.get("uri")
        if method == "logging/setLevel" and isinstance(params.get("level"), str):
            self.log_level = params["level"]
        elif method == "resources/subscribe" and isinstance(uri, str) and self._subscribable:
            self.subscribed.add(uri)
        elif method == "resources/unsubscribe" and isinstance(uri, str):
            self.subscribed.discard(uri)

    @property
    def _subscribable(self) -> bool:
        resources = self.capabilities.get("resources")
        return isinstance(resources, dict) and bool(resources.get("subscribe"))

    def local_answer(self, message: dict[str, Any]) -> bytes | None:
        """The answer to a request this era has no method for (`_note` took what it says)."""
        method = message.get("method")
        if method not in _ANSWERED_HERE or "id" not in message:
            return None
        answer: dict[str, Any] = {"jsonrpc": "2.0", "id": message["id"], "result": {}}
        if method != "logging/setLevel" and not self._subscribable:
            answer = jsonrpc_error(message["id"], -32601, f"{self._server} offers no resource subscriptions")
        return msgspec.json.encode(answer)

    # -- subscriptions/listen (transports/listen.py does the I/O) ---------------------------------

    def listen_filter(self) -> dict[str, Any]:
        """What the gateway wants to hear outside requests: the list changes the server offers,
        and updates of the subscribed resources; {} once there is nothing (no stream then)."""
        if not self.initialized:
            return {}
        wanted: dict[str, Any] = {}
        for kind, key in _LIST_CHANGES:
            offered = self.capabilities.get(kind)
            if isinstance(offered, dict) and offered.get("listChanged"):
                wanted[key] = True
        if self.subscribed:
            wanted["resourceSubscriptions"] = sorted(self.subscribed)
        return wanted

    def listen_request(self, request_id: str, wanted: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        params = {"_meta": dict(self._meta), "notifications": wanted}
        message = {"jsonrpc": "2.0", "id": request_id, "method": "subscriptions/listen", "params": params}
        return msgspec.json.encode(message), self._headers("subscriptions/listen", params)

    @staticmethod
    def from_listen(data: bytes) -> tuple[bytes | None, bool]:
        """An event of the listen stream: (the notification for the actor, without the stream's
        subscription id; None for the acknowledgment or anything else), and whether the server
        ended the stream (its answer to the listen request)."""
        try:
            message = msgspec.json.decode(data)
        except msgspec.DecodeError:
            return None, False
        if not isinstance(message, dict):
            return None, False
        if "id" in message:
            return None, True
        method, params = message.get("method"), message.get("params")
        if not isinstance(method, str) or method == _ACKNOWLEDGED:
            return None, False
        if isinstance(params, dict) and isinstance(params.get("_meta"), dict):
            meta = {k: v for k, v in params["_meta"].items() if k != SUBSCRIPTION_KEY}
            message["params"] = (
                {**params, "_meta": meta} if meta else {k: v for k, v in params.items() if k != "_meta"}
            )
        return msgspec.json.encode(message), False

    def retry(self, retry: Retry) -> Send:
        """The retry of an ``input_required`` request, under its own id."""
        message = retry.message
        self._pending[message["id"]] = message["method"]
        headers = self._headers(message["method"], message.get("params") or {})
        return Send(msgspec.json.encode(message), headers, message["id"])


def as_object(line: bytes) -> dict[str, Any] | None:
    """A line the gateway sends, as the dict the translation works on (None: not an object)."""
    try:
        message = msgspec.json.decode(line)
    except msgspec.DecodeError:
        return None
    return message if isinstance(message, dict) else None


def jsonrpc_error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def supported_versions(body: bytes) -> list[str] | None:
    """The versions an UnsupportedProtocolVersion error lists; None if the body is not one."""
    error = _error_of(body)
    if error is None or error.get("code") != eras.UNSUPPORTED_VERSION:
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
