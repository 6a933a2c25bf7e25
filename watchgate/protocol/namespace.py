"""Names and URIs as a client sees them in multi-server mode, and the way back to the upstream's own.

Tools and prompts become ``<server>__<name>`` (ADR-014: MCP hosts accept only
``^[a-zA-Z0-9_-]{1,64}$``, so ``::`` is out); server names cannot contain ``_``, so splitting on the
first ``__`` is unambiguous. URIs become ``<server>+<uri>``: a valid RFC 3986 scheme, reversible and
readable. In single-server mode everything passes through unchanged.

Prefixing is per server (``prefix: auto | always | never``): a server without a prefix keeps its
own names. A name that two unprefixed servers share belongs to the first in the config (the
router reports the collision); a name no list knows goes to the one unprefixed server, if
there is exactly one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

import msgspec

from watchgate.errors import UnknownName

# \Z, not $: a trailing newline must not slip through re.match
SERVER_NAME_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,31}\Z")
SEPARATOR: Final = "__"
MAX_NAME: Final = 64
_HASH_LEN: Final = 8


def public_name(server: str, name: str) -> str:
    """``server__name``, shortened to 64 characters as prefix + short hash when it would be longer."""
    full = f"{server}{SEPARATOR}{name}"
    if len(full) <= MAX_NAME:
        return full
    digest = hashlib.sha256(name.encode()).hexdigest()[:_HASH_LEN]
    keep = MAX_NAME - len(server) - len(SEPARATOR) - _HASH_LEN - 1
    return f"{server}{SEPARATOR}{name[:keep]}_{digest}"


def split_name(name: str) -> tuple[str, str] | None:
    server, sep, rest = name.partition(SEPARATOR)
    if not sep or not server or not rest:
        return None
    return server, rest


def public_uri(server: str, uri: str) -> str:
    return f"{server}+{uri}"


def split_uri(uri: str) -> tuple[str, str] | None:
    server, plus, rest = uri.partition("+")
    if not plus or not rest or not SERVER_NAME_RE.match(server):
        return None
    return server, rest


class NamespaceTable:
    """An immutable snapshot of who owns which public name; the router builds a new one per change.

    A server that has listed its tools (or prompts) is asked only for names it listed: any other
    name under its prefix, in any other spelling, is unknown here, decided by the gateway like
    every unknown name (a server that folds case or trims spaces would otherwise run a tool the
    tool manager hides). A server whose list is not known yet (starting, stopped) is still
    reached by its prefix, so the caller hears the server's own state. With one server and
    nothing hidden (``transparent``), the gateway is invisible: every name goes to the server,
    which answers for it as it would directly.
    """

    def __init__(
        self,
        *,
        multi_server: bool,
        servers: Iterable[str],
        tools: Mapping[str, Iterable[str]] = {},
        prompts: Mapping[str, Iterable[str]] = {},
        prefixed: Iterable[str] | None = None,
        transparent: bool = False,
    ) -> None:
        """``prefixed``: the servers whose names carry their prefix (default: every server in
        multi-server mode, none with one server). ``tools``/``prompts``: the names each server
        listed; a server absent from them has not listed yet. ``transparent``: with one server,
        names it did not list still go to it."""
        self.multi_server = multi_server
        self.servers = list(servers)
        self.prefixed = (
            frozenset(self.servers if multi_server else ()) if prefixed is None else frozenset(prefixed)
        )
        self._known = set(self.servers)
        plain = [server for server in self.servers if server not in self.prefixed]
        self._plain_only = plain[0] if len(plain) == 1 else None  # where an unknown plain name goes
        self._sole = self._plain_only if len(self.servers) == 1 else None  # everything goes there
        self.collisions: list[tuple[str, str, str]] = []  # (name, kept server, hidden server)
        self._tools = self._index(tools)
        self._prompts = self._index(prompts)
        self._listed = {"tool": frozenset(tools), "prompt": frozenset(prompts)}
        if transparent and self._sole is not None:
            self._listed = {"tool": frozenset(), "prompt": frozenset()}

    def _index(self, names: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, str]]:
        index: dict[str, tuple[str, str]] = {}
        for server in sorted(names, key=self._order):
            for name in names[server]:
                public = self.public_tool(server, name)
                if public in index:
                    self.collisions.append((public, index[public][0], server))
                    continue
                index[public] = (server, name)
        return index

    def _order(self, server: str) -> int:
        return self.servers.index(server) if server in self._known else len(self.servers)

    def owner(self, kind: str, public: str) -> str | None:
        """The server a listed tool or prompt name belongs to (the first, on a collision)."""
        found = (self._tools if kind == "tools" else self._prompts).get(public)
        return found[0] if found is not None else None

    def public_tool(self, server: str, name: str) -> str:
        return public_name(server, name) if server in self.prefixed else name

    def public_uri(self, server: str, uri: str) -> str:
        return public_uri(server, uri) if server in self.prefixed else uri

    def resolve_tool(self, name: str) -> tuple[str, str]:
        return self._resolve("tool", name, self._tools)

    def resolve_prompt(self, name: str) -> tuple[str, str]:
        return self._resolve("prompt", name, self._prompts)

    def _resolve(self, kind: str, name: str, index: dict[str, tuple[str, str]]) -> tuple[str, str]:
        found = index.get(name)
        if found is not None:
            return found
        split = split_name(name) if self._sole is None else None
        if split is not None and split[0] in self.prefixed:
            candidate = split
        elif self._plain_only is not None:
            candidate = (self._plain_only, name)
        else:
            raise UnknownName(kind, name, self.servers)
        if candidate[0] in self._listed[kind]:  # it listed its names, and this is none of them
            raise UnknownName(kind, name, self.servers)
        return candidate

    def resolve_uri(self, uri: str) -> tuple[str, str]:
        if self._sole is not None:
            return self._sole, uri
        split = split_uri(uri)
        if split is not None and split[0] in self.prefixed:
            return split
        if self._plain_only is not None:
            return self._plain_only, uri
        raise UnknownName("resource", uri, self.servers)


# --- URIs inside results -------------------------------------------------------------------------

_URI_MARK: Final = re.compile(rb'"uri"')  # re scans the Raw buffer without copying it


def rewrite_result(method: str, server: str, result: msgspec.Raw) -> msgspec.Raw:
    """Prefix every resource URI a result carries, leaving user data (structuredContent) alone.

    The byte scan keeps the common case (no URI at all) free of any decoding.
    """
    walker = _RESULT_WALKERS.get(method)
    if walker is None or _URI_MARK.search(result) is None:
        return result
    body = msgspec.json.decode(result)
    if not isinstance(body, dict) or not walker(body, server):
        return result
    return msgspec.Raw(msgspec.json.encode(body))


def _content_blocks(body: dict[str, Any], server: str) -> bool:
    return _blocks(body.get("content"), server)


def _prompt_messages(body: dict[str, Any], server: str) -> bool:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return False
    changed = False
    for message in messages:
        if isinstance(message, dict):
            changed |= _blocks([message.get("content")], server)
    return changed


def _resource_contents(body: dict[str, Any], server: str) -> bool:
    contents = body.get("contents")
    if not isinstance(contents, list):
        return False
    return any([_prefix(item, "uri", server) for item in contents])


def _blocks(blocks: object, server: str) -> bool:
    if not isinstance(blocks, list):
        return False
    changed = False
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "resource_link":
            changed |= _prefix(block, "uri", server)
        elif kind == "resource":
            changed |= _prefix(block.get("resource"), "uri", server)
    return changed


def _prefix(item: object, key: str, server: str) -> bool:
    if isinstance(item, dict) and isinstance(item.get(key), str):
        item[key] = public_uri(server, item[key])
        return True
    return False


_RESULT_WALKERS: Final = {
    "tools/call": _content_blocks,
    "prompts/get": _prompt_messages,
    "resources/read": _resource_contents,
}
