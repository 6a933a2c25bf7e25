"""The tool manager: what clients see of one server's tools, prompts and resources.

A server may offer more than a model should have in its context, under names that say little.
Per server, ``tools``/``prompts`` rules hide items (``allow``/``deny`` globs), show them under
other names (``rename``) and with other descriptions (``describe``); ``resources`` rules hide
URIs and describe them. Applied where the router's catalog builds the lists and where a call is
resolved back to the server's own name, so a hidden or renamed-away name is refused like an
unknown one, and everything after that point (plugins, pins, the audit log) keeps working on
the server's own identity: renaming never defeats pinning.

Globs are ``fnmatch`` patterns matched case-sensitively against the server's own names.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Final, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import msgspec

from watchgate.protocol import jsonrpc

__all__ = ["Curation"]

Item = dict[str, msgspec.Raw]
_str: Final = msgspec.json.Decoder(str)
_log = logging.getLogger("watchgate.router")


class ResourceRules(Protocol):
    """What the tool manager says of a server's resources (config.schema.ResourceRules)."""

    @property
    def allow(self) -> tuple[str, ...] | None: ...
    @property
    def deny(self) -> tuple[str, ...]: ...
    @property
    def describe(self) -> Mapping[str, str]: ...
    @property
    def empty(self) -> bool: ...


class ItemRules(ResourceRules, Protocol):
    """... and of its tools or prompts (config.schema.ItemRules)."""

    @property
    def rename(self) -> Mapping[str, str]: ...


class CuratedServer(Protocol):
    """A server's config, as far as the tool manager reads it (config.schema.UpstreamConfig)."""

    @property
    def name(self) -> str: ...
    @property
    def tools(self) -> ItemRules: ...
    @property
    def prompts(self) -> ItemRules: ...
    @property
    def resources(self) -> ResourceRules: ...


class _Names:
    """The rules of one named kind (tools or prompts)."""

    def __init__(self, rules: ItemRules) -> None:
        self.rules = rules
        self._shown = dict(rules.rename)
        self._own = {new: old for old, new in rules.rename.items()}

    def visible(self, own: str) -> bool:
        allow, deny = self.rules.allow, self.rules.deny
        if any(fnmatchcase(own, pattern) for pattern in deny):
            return False
        return allow is None or any(fnmatchcase(own, pattern) for pattern in allow)

    def shown(self, own: str) -> str:
        return self._shown.get(own, own)

    def shadowed(self, own: str) -> bool:
        """Another item is renamed to this one's name: that name is the other's now."""
        return self._own.get(own, own) != own

    def own(self, shown: str) -> str | None:
        """The server's own name for a name a client used; None if clients cannot use it."""
        own = self._own.get(shown)
        if own is None:
            if shown in self._shown:
                return None  # renamed away: only the new name works
            own = shown
        return own if self.visible(own) else None


def same_uri(uri: str) -> str:
    """The form two spellings of one URI share: scheme and host in lower case, every
    percent-escape decoded, dot segments resolved, ``file://localhost/`` as ``file:///``. A server that reads
    ``SECRET://x``, ``file://localhost/x`` or ``%2Fx`` as the hidden URI must not get them."""
    parts = urlsplit(uri)
    if not parts.scheme:
        return unquote(uri)
    netloc = parts.netloc.lower()
    if parts.scheme.lower() == "file" and netloc == "localhost":
        netloc = ""
    path = unquote(parts.path)
    if path.startswith("/"):  # dot segments resolved: /project/../etc is /etc
        path = posixpath.normpath(path) + ("/" if path.endswith("/") and path != "/" else "")
    rest = urlunsplit(("", "", "", unquote(parts.query), unquote(parts.fragment)))
    return f"{parts.scheme.lower()}://{netloc}{path}{rest}"


def _uri_visible(rules: ResourceRules, uri: str) -> bool:
    """Denied if the URI matches a deny rule as written or as the server may read it
    (`same_uri`); with an allow list, shown only if both forms are allowed."""
    forms = {uri, same_uri(uri)}
    if any(fnmatchcase(form, pattern) for form in forms for pattern in rules.deny):
        return False
    return rules.allow is None or all(
        any(fnmatchcase(form, pattern) for pattern in rules.allow) for form in forms
    )


class Curation:
    """One server's tool manager rules, applied to its lists and to the names clients use."""

    def __init__(
        self, tools: ItemRules, prompts: ItemRules, resources: ResourceRules, *, server: str
    ) -> None:
        self._server = server
        self._names = {"tools": _Names(tools), "prompts": _Names(prompts)}
        self._resources = resources
        self.empty = tools.empty and prompts.empty and resources.empty

    @classmethod
    def of(cls, config: CuratedServer) -> Curation:
        return cls(config.tools, config.prompts, config.resources, server=config.name)

    def items(self, key: str, items: list[Item]) -> list[Item]:
        """A list as clients see it: hidden items left out, names and descriptions replaced."""
        if self.empty:
            return items
        if key in self._names:
            return self._named(key, items)
        member = "uri" if key == "resources" else "uriTemplate"
        kept = []
        for item in items:
            value = _str.decode(item[member]) if member in item else None
            if value is not None and not self._uri_ok(key, value):
                continue
            text = self._resources.describe.get(value) if value is not None else None
            kept.append(item if text is None else {**item, "description": jsonrpc.raw(text)})
        return kept

    def _uri_ok(self, key: str, value: str) -> bool:
        if key == "resources":
            return _uri_visible(self._resources, value)
        return not any(fnmatchcase(value, pattern) for pattern in self._resources.deny)

    def _named(self, key: str, items: list[Item]) -> list[Item]:
        names = self._names[key]
        kept: list[Item] = []
        for item in items:
            if "name" not in item:
                kept.append(item)
                continue
            own = _str.decode(item["name"])
            if not names.visible(own):
                continue
            shown = names.shown(own)
            if shown == own and names.shadowed(own):
                _log.warning(
                    "[%s] %s %r is hidden: another one is renamed to that name",
                    self._server,
                    key[:-1],
                    own,
                )
                continue
            curated = dict(item)
            if shown != own:
                curated["name"] = jsonrpc.raw(shown)
            text = names.rules.describe.get(own)
            if text is not None:
                curated["description"] = jsonrpc.raw(text)
            kept.append(curated)
        return kept

    def own_name(self, key: str, shown: str) -> str | None:
        """The server's own tool or prompt name for ``shown``; None if clients cannot use it."""
        return self._names[key].own(shown) if not self.empty else shown

    def allows_uri(self, uri: str) -> bool:
        return self.empty or _uri_visible(self._resources, uri)
