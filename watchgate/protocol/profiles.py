"""Profiles: what one kind of client sees of the gateway (``profiles:`` in the config).

A coding agent needs the filesystem and the issue tracker, a chat client the calendar: each
attaches with its profile (``watchgate attach --profile coding``, ``?profile=`` over HTTP) and
its lists hold only the servers the profile names and, of those, the tools and prompts its globs
let through (matched against the names clients see, prefix included). A call to anything else is
refused like a call to something that does not exist. Clients without a profile see everything.

Lists are filtered from the catalog's merged lists and cached until those change, so a profiled
``tools/list`` costs what an unprofiled one does.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Final, Protocol

import msgspec

from watchgate.errors import UnknownName
from watchgate.protocol import jsonrpc
from watchgate.protocol.catalog import LIST_KINDS, Catalog, Item

__all__ = ["Profile", "profiles_of"]

_str: Final = msgspec.json.Decoder(str)
_NAMED: Final = {
    "tools": "tools",
    "prompts": "prompts",
    "resources": "resources",
    "tool": "tools",
    "prompt": "prompts",
    "resource": "resources",
}


class Globs(Protocol):
    @property
    def allow(self) -> tuple[str, ...] | None: ...
    @property
    def deny(self) -> tuple[str, ...]: ...


class ProfileRules(Protocol):
    """A profile as the config has it (``config.schema.ProfileConfig``)."""

    @property
    def servers(self) -> tuple[str, ...] | None: ...
    @property
    def tools(self) -> Globs: ...
    @property
    def prompts(self) -> Globs: ...
    @property
    def resources(self) -> Globs: ...


class Profile:
    """What a client sees: the rules of every layer at once (a profile it chose, and the access
    rule and forced profile of who it is: each can only take away)."""

    def __init__(self, name: str, rules: ProfileRules, *more: ProfileRules) -> None:
        self.name = name
        self._layers = [
            (
                frozenset(r.servers) if r.servers is not None else None,
                {"tools": r.tools, "prompts": r.prompts, "resources": r.resources},
            )
            for r in (rules, *more)
        ]
        self._cache: dict[str, tuple[msgspec.Raw, msgspec.Raw]] = {}  # key -> (merged, filtered)

    def allows_server(self, server: str) -> bool:
        return all(servers is None or server in servers for servers, _ in self._layers)

    def allows_name(self, kind: str, public: str) -> bool:
        return all(_allowed(globs[_NAMED[kind]], public) for _, globs in self._layers)

    def check(self, kind: str, server: str, public: str, known: list[str]) -> None:
        """Raise `UnknownName` for what this profile does not show (kind: tool, prompt, resource)."""
        allowed = self.allows_server(server) and self.allows_name(kind, public)
        if not allowed:
            raise UnknownName(kind, public, self.visible(known), refused_by="profile")

    def visible(self, servers: list[str]) -> list[str]:
        """The servers this profile lets a client see."""
        return [server for server in servers if self.allows_server(server)]

    def result(self, key: str, catalog: Catalog) -> msgspec.Raw:
        """The catalog's merged list ``key`` as this profile shows it (cached until it changes)."""
        merged = catalog.result(key)
        cached = self._cache.get(key)
        if cached is not None and cached[0] is merged:
            return cached[1]
        kept = [item for item in catalog.items(key) if self._shows(key, item, catalog)]
        filtered = jsonrpc.raw({key: kept})
        self._cache[key] = (merged, filtered)
        return filtered

    def _shows(self, key: str, item: Item, catalog: Catalog) -> bool:
        member = LIST_KINDS[key].field
        if member not in item:
            return True
        value = _str.decode(item[member])
        if key in ("tools", "prompts"):
            owner = catalog.table.owner(key, value)
            return (owner is None or self.allows_server(owner)) and self.allows_name(key, value)
        try:
            server, _ = catalog.table.resolve_uri(value)
        except UnknownName:
            return True
        # a template is no URI: its globs are judged on each URI read from it
        return self.allows_server(server) and (key != "resources" or self.allows_name(key, value))


def _allowed(globs: Globs, public: str) -> bool:
    if any(fnmatchcase(public, pattern) for pattern in globs.deny):
        return False
    return globs.allow is None or any(fnmatchcase(public, pattern) for pattern in globs.allow)


def profiles_of(configured: Mapping[str, ProfileRules]) -> dict[str, Profile]:
    return {name: Profile(name, rules) for name, rules in configured.items()}
