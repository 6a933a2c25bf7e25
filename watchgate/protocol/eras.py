"""The 2026-07-28 (stateless) revision as a client meets it, whatever the transport (design.md
§5): what makes a request modern, what the gateway checks in its ``_meta``, what it
keeps from upstreams, and the shape of the results it answers with.

Pure functions on messages, shared by the HTTP listener (``listeners/http/modern.py``) and the
client actor (a modern client on stdio).
"""

from __future__ import annotations

import secrets
from typing import Any, Final, TypeGuard

import msgspec

from watchgate.errors import JsonRpcError
from watchgate.protocol import jsonrpc

__all__ = [
    "CAPABILITIES_KEY",
    "LEGACY_VERSIONS",
    "MODERN_VERSIONS",
    "MRTR_STATE_PREFIX",
    "OWN_STATE_PREFIX",
    "UNSUPPORTED_VERSION",
    "VERSION_KEY",
    "check_meta",
    "client_identity",
    "discover_result",
    "for_upstream",
    "input_request",
    "input_required",
    "is_round_state",
    "modern_version",
    "new_round_state",
    "own_state_of",
    "params_of",
    "shaped",
    "without_cache_hints",
]

MODERN_VERSIONS: Final = ("2026-07-28",)
#: the revisions with the initialize handshake (and, over HTTP from 2025-03-26, sessions)
LEGACY_VERSIONS: Final = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"})
VERSION_KEY: Final = "io.modelcontextprotocol/protocolVersion"
#: the gateway's own ``requestState`` of an MRTR round (another is a 2026-07-28 server's)
MRTR_STATE_PREFIX: Final = "watchgate-mrtr:"
#: this process's own states: a Watchgate behind this one (or beside it, another replica) issues
#: states of the same family that are not this process's to judge, and pass on like a server's
OWN_STATE_PREFIX: Final = f"{MRTR_STATE_PREFIX}{secrets.token_urlsafe(6)}:"
CAPABILITIES_KEY: Final = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO_KEY: Final = "io.modelcontextprotocol/clientInfo"
SERVER_INFO_KEY: Final = "io.modelcontextprotocol/serverInfo"
LOG_LEVEL_KEY: Final = "io.modelcontextprotocol/logLevel"
#: the methods whose target is named in their params (and in the Mcp-Name header), and where
NAMED_PARAM: Final = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
_RESERVED_PREFIX: Final = "io.modelcontextprotocol/"
UNSUPPORTED_VERSION: Final = -32022
#: results a client may cache (spec server/utilities/caching), with the gateway's hints
CACHEABLE: Final = frozenset(
    {
        "server/discover",
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
    cacheScope: str | None = None


_shape = msgspec.json.Decoder(_Shape)


def params_of(msg: jsonrpc.Message) -> dict[str, Any] | None:
    """The request's params as an object ({} when absent); None when they are not an object."""
    if msg.params is msgspec.UNSET:
        return {}
    try:
        return _params.decode(msg.params)
    except msgspec.DecodeError:
        return None


def _meta_of(params: dict[str, Any] | None) -> dict[str, Any]:
    meta = params.get("_meta") if params else None
    return meta if isinstance(meta, dict) else {}


def modern_version(params: dict[str, Any] | None) -> object:
    """What the request's ``_meta`` names as its protocol version (None: a legacy request)."""
    return _meta_of(params).get(VERSION_KEY)


def check_meta(params: dict[str, Any] | None) -> None:
    """The per-request ``_meta`` rules; `JsonRpcError` names the first one broken (-32022 with
    the supported versions in its data, -32602 otherwise)."""
    if params is None:
        raise JsonRpcError(jsonrpc.INVALID_PARAMS, "params must be an object")
    meta = _meta_of(params)
    version = meta.get(VERSION_KEY)
    if not isinstance(version, str):
        raise JsonRpcError(jsonrpc.INVALID_PARAMS, f"_meta {VERSION_KEY} is required in 2026-07-28")
    if version not in MODERN_VERSIONS:
        raise JsonRpcError(
            UNSUPPORTED_VERSION,
            f"unsupported protocol version {version!r}",
            {"supported": list(MODERN_VERSIONS), "requested": version},
        )
    if not isinstance(meta.get(CAPABILITIES_KEY), dict):
        raise JsonRpcError(jsonrpc.INVALID_PARAMS, f"_meta {CAPABILITIES_KEY} is required (an object)")


def client_identity(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The capabilities and clientInfo a request's ``_meta`` declares (checked by check_meta)."""
    meta = _meta_of(params)
    info = meta.get(CLIENT_INFO_KEY)
    return meta.get(CAPABILITIES_KEY) or {}, info if isinstance(info, dict) else {}


def for_upstream(msg: jsonrpc.Message, params: dict[str, Any]) -> jsonrpc.Message:
    """The request without the client's connection-owned ``_meta`` keys: each upstream gets its
    own era's from its transport, never a client's."""
    meta = {k: v for k, v in _meta_of(params).items() if not k.startswith(_RESERVED_PREFIX)}
    rest = {k: v for k, v in params.items() if k != "_meta"}
    if meta:
        rest["_meta"] = meta
    return msg.with_params(jsonrpc.raw(rest))


def shaped(msg: jsonrpc.Message, method: str) -> jsonrpc.Message:
    """A result as a 2026-07-28 client expects it: ``resultType`` always, and cache hints on a
    cacheable result that has none (0 and private: what passes the gateway's plugins may differ
    between callers)."""
    if msg.result is msgspec.UNSET:
        return msg
    result = bytes(msg.result)
    try:
        shape = _shape.decode(result)
    except msgspec.DecodeError:
        return msg
    added = b""
    if shape.resultType is None:
        added += b'"resultType":"complete",'
    if method in CACHEABLE and shape.ttlMs is None and shape.resultType in (None, "complete"):
        added += b'"ttlMs":0,"cacheScope":"private",'
    if not added:
        return msg
    inner = result.strip()[1:-1].strip()
    return msg.with_result(msgspec.Raw(b"{" + (added + inner if inner else added[:-1]) + b"}"))


def without_cache_hints(msg: jsonrpc.Message) -> jsonrpc.Message:
    """A result a plugin changed: the server's ``ttlMs``/``cacheScope`` described what it sent,
    not this (the gateway's own conservative hints are added toward 2026-07-28 clients)."""
    if msg.result is msgspec.UNSET:
        return msg
    try:
        shape = _shape.decode(msg.result)
        if shape.ttlMs is None and shape.cacheScope is None:
            return msg
        result = _params.decode(msg.result)
    except msgspec.DecodeError:
        return msg
    result.pop("ttlMs", None)
    result.pop("cacheScope", None)
    return msg.with_result(jsonrpc.raw(result))


def discover_result(initialized: dict[str, Any]) -> dict[str, Any]:
    """``server/discover``'s answer from what ``initialize`` would say (the upstreams' union)."""
    discovered: dict[str, Any] = {
        "resultType": "complete",
        "supportedVersions": list(MODERN_VERSIONS),
        "capabilities": initialized["capabilities"],
        "serverInfo": initialized["serverInfo"],
        "_meta": {SERVER_INFO_KEY: initialized["serverInfo"]},
        "ttlMs": 0,
        "cacheScope": "private",
    }
    if "instructions" in initialized:
        discovered["instructions"] = initialized["instructions"]
    return discovered


# -- the gateway's own input rounds (MRTR) toward 2026-07-28 clients ------------------------------


def new_round_state() -> str:
    """An opaque ``requestState`` for a round of this gateway process's own."""
    return OWN_STATE_PREFIX + secrets.token_urlsafe(24)


def is_round_state(state: object) -> TypeGuard[str]:
    """A ``requestState`` of this process's own; another (a 2026-07-28 server's, or another
    Watchgate's: one behind this one, nested) is passed on untouched for its issuer to judge."""
    return isinstance(state, str) and state.startswith(OWN_STATE_PREFIX)


def own_state_of(answer: jsonrpc.Message) -> str | None:
    """The ``requestState`` of an answer that is this process's own ``input_required`` (the
    call waits for its retry here); None for any other answer."""
    if answer.result is msgspec.UNSET:
        return None
    loaded = jsonrpc.load(answer.result)
    state = loaded.get("requestState") if isinstance(loaded, dict) else None
    return state if is_round_state(state) else None


def input_request(question: jsonrpc.Message) -> dict[str, Any]:
    """A legacy server's request to the client, as an ``inputRequests`` entry holds it."""
    asked: dict[str, Any] = {"method": question.method}
    if question.params is not msgspec.UNSET:
        asked["params"] = jsonrpc.load(question.params)
    return asked


def input_required(asked: dict[str, dict[str, Any]], state: str) -> dict[str, Any]:
    """The result that ends a request with what is still asked of its client."""
    return {"resultType": "input_required", "inputRequests": dict(asked), "requestState": state}
