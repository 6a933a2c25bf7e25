"""The router's cache of every upstream's lists, and the merged answers built from it.

Lists are fetched when an upstream becomes ready and again on its ``*/list_changed``, following
the upstream's pagination to the end. Clients are answered from the cache in one page, so a
``tools/list`` costs no upstream round trip and a client never sees an upstream's raw cursor.
Merged results are encoded once per change, not once per request.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from watchgate.errors import UnknownName
from watchgate.protocol import jsonrpc
from watchgate.protocol.curation import Curation
from watchgate.protocol.namespace import NamespaceTable, public_name, public_uri


@dataclass(frozen=True)
class ListKind:
    key: str  # the result member and our name for it
    method: str
    capability: str  # the server capability that says the server has this list
    field: str  # the member that namespacing rewrites
    rename: Callable[[str, str], str]


LIST_KINDS: Final = {
    kind.key: kind
    for kind in (
        ListKind("tools", "tools/list", "tools", "name", public_name),
        ListKind("prompts", "prompts/list", "prompts", "name", public_name),
        ListKind("resources", "resources/list", "resources", "uri", public_uri),
        ListKind("resourceTemplates", "resources/templates/list", "resources", "uriTemplate", public_uri),
    )
}
BY_METHOD: Final = {kind.method: kind for kind in LIST_KINDS.values()}
LIST_CHANGED: Final = {
    "notifications/tools/list_changed": ("tools",),
    "notifications/prompts/list_changed": ("prompts",),
    "notifications/resources/list_changed": ("resources", "resourceTemplates"),
}
MAX_PAGES: Final = 1000

Item = dict[str, msgspec.Raw]
_items_decoder: Final = msgspec.json.Decoder(list[dict[str, msgspec.Raw]])
_str_decoder: Final = msgspec.json.Decoder(str)


class Catalog:
    def __init__(
        self,
        *,
        multi_server: bool,
        servers: Sequence[str],
        prefixed: Collection[str] | None = None,
        curations: Mapping[str, Curation] | None = None,
    ) -> None:
        """``prefixed``: the servers whose names carry their prefix (default: all of them in
        multi-server mode, none with one server). ``curations``: each server's tool manager
        rules (none: everything as the server names it)."""
        self.multi_server = multi_server
        self.servers = list(servers)
        self.prefixed = set(self.servers if multi_server else ()) if prefixed is None else set(prefixed)
        self._curations = dict(curations or {})
        self._lists: dict[str, dict[str, list[Item]]] = {server: {} for server in self.servers}  # as served
        self._shown: dict[str, dict[str, list[Item]]] = {server: {} for server in self.servers}  # as seen
        # what plugins keep out of the lists but still route, so the plugin says why it refuses
        self._withheld: dict[str, dict[str, list[Item]]] = {server: {} for server in self.servers}
        self._merged: dict[str, msgspec.Raw] = {}
        self._items: dict[str, list[Item]] = {}
        self.table = NamespaceTable(multi_server=multi_server, servers=self.servers, prefixed=self.prefixed)

    def update(
        self, server: str, lists: dict[str, list[Item]], withheld: Mapping[str, list[Item]] | None = None
    ) -> list[str]:
        """Replace some of ``server``'s lists; return the kinds whose merged answer changed.
        ``withheld``: items of those lists that plugins keep from clients (still routed)."""
        current = self._lists[server]
        changed = [key for key, items in lists.items() if current.get(key, []) != items]
        first = [key for key in lists if key not in current]  # listed now: its names are decided
        current.update(lists)
        curation = self._curations.get(server)
        for key in changed:
            self._shown[server][key] = curation.items(key, current[key]) if curation else current[key]
        hidden = {key: list((withheld or {}).get(key, [])) for key in lists}
        moved = [key for key, items in hidden.items() if self._withheld[server].get(key, []) != items]
        self._withheld[server].update(hidden)
        self._rebuild(changed, renamed=bool({"tools", "prompts"} & {*first, *moved}))
        return changed

    def drop(self, server: str) -> list[str]:
        changed = [key for key, items in self._lists[server].items() if items]
        self._lists[server] = {}
        self._shown[server] = {}
        self._withheld[server] = {}
        self._rebuild(changed, renamed=True)
        return changed

    def add_server(
        self, server: str, *, prefixed: bool | None = None, curation: Curation | None = None
    ) -> None:
        """``prefixed``: whether its names carry its prefix (default: in multi-server mode)."""
        self.servers.append(server)
        if curation is not None:
            self._curations[server] = curation
        if prefixed if prefixed is not None else self.multi_server:
            self.prefixed.add(server)
        else:
            self.prefixed.discard(server)
        self._lists[server] = {}
        self._shown[server] = {}
        self._withheld[server] = {}
        self._rebuild(["tools", "prompts"])

    def set_curation(self, server: str, curation: Curation) -> list[str]:
        """New tool manager rules for ``server``: the kinds whose list clients see changed."""
        self._curations[server] = curation
        changed = []
        for key, items in self._lists[server].items():
            shown = curation.items(key, items)
            if shown != self._shown[server].get(key):
                self._shown[server][key] = shown
                changed.append(key)
        self._rebuild(changed)
        return changed

    def remove_server(self, server: str) -> list[str]:
        changed = self.drop(server)
        self.servers.remove(server)
        self.prefixed.discard(server)
        del self._lists[server]
        del self._shown[server]
        del self._withheld[server]
        self._curations.pop(server, None)
        self._rebuild(["tools", "prompts"])
        return changed

    def shown_names(self, server: str, key: str) -> list[tuple[str, str]]:
        """(the name clients see before any prefix, the server's own) of a tool or prompt list."""
        curation = self._curations.get(server)
        pairs = []
        for shown in _names(self._shown[server].get(key, [])):
            own = curation.own_name(key, shown) if curation is not None else shown
            pairs.append((shown, own if own is not None else shown))
        return pairs

    def count(self, server: str, key: str) -> int:
        """How many items of the list clients see."""
        return len(self._shown[server].get(key, ()))

    # -- a name a client used, back to the server's own ------------------------------------------

    def resolve_tool(self, name: str) -> tuple[str, str]:
        try:
            return self._own("tools", "tool", *self.table.resolve_tool(name), name)
        except UnknownName as exc:
            raise self._attributed(exc, "tools") from None

    def resolve_prompt(self, name: str) -> tuple[str, str]:
        try:
            return self._own("prompts", "prompt", *self.table.resolve_prompt(name), name)
        except UnknownName as exc:
            raise self._attributed(exc, "prompts") from None

    def _attributed(self, refused: UnknownName, key: str) -> UnknownName:
        """An unknown name that is one of a server's own, hidden or renamed away by its tool
        manager rules, is the tool manager's refusal (so the audit log says who hid it)."""
        for server, curation in self._curations.items():
            if curation.empty or server not in self._lists:
                continue
            own = {self.table.public_tool(server, n) for n in _names(self._lists[server].get(key, []))}
            if refused.name in own:
                return UnknownName(refused.kind, refused.name, self.servers, refused_by="tool_manager")
        return refused

    def resolve_uri(self, uri: str) -> tuple[str, str]:
        server, own = self.table.resolve_uri(uri)
        curation = self._curations.get(server)
        if curation is not None and not curation.allows_uri(own):
            raise UnknownName("resource", uri, self.servers, refused_by="tool_manager")
        return server, own

    def _own(self, key: str, kind: str, server: str, shown: str, name: str) -> tuple[str, str]:
        curation = self._curations.get(server)
        own = curation.own_name(key, shown) if curation is not None else shown
        if own is None:  # hidden, or renamed away: as if the server had no such thing
            raise UnknownName(kind, name, self.servers, refused_by="tool_manager")
        return server, own

    def result(self, key: str) -> msgspec.Raw:
        """The merged list ``key`` as the ``*/list`` result (the same object until it changes)."""
        merged = self._merged.get(key)
        if merged is None:
            merged = self._merged[key] = jsonrpc.raw({key: self.items(key)})
        return merged

    def items(self, key: str) -> list[Item]:
        items = self._items.get(key)
        if items is None:
            items = self._items[key] = self._merge(key)
        return items

    def _merge(self, key: str) -> list[Item]:
        kind = LIST_KINDS[key]
        merged: list[Item] = []
        named = key in ("tools", "prompts")
        for server in self.servers:
            items = self._shown[server].get(key, [])
            if server not in self.prefixed:
                # its names pass through; one another plain server already has is not listed twice
                merged.extend(item for item in items if not named or self._owns(key, server, item))
                continue
            for item in items:
                value = item.get(kind.field)
                if value is None:
                    continue  # an item without its identifying member cannot be routed back
                renamed = dict(item)
                renamed[kind.field] = jsonrpc.raw(kind.rename(server, _str_decoder.decode(value)))
                merged.append(renamed)
        return merged

    def _owns(self, key: str, server: str, item: Item) -> bool:
        if len(self.servers) == 1 or "name" not in item:
            return True
        return self.table.owner(key, _str_decoder.decode(item["name"])) in (server, None)

    def _rebuild(self, changed: list[str], *, renamed: bool = False) -> None:
        for key in changed:
            self._merged.pop(key, None)
            self._items.pop(key, None)
        if renamed or {"tools", "prompts"} & set(changed):
            self.table = NamespaceTable(
                multi_server=self.multi_server,
                servers=self.servers,
                prefixed=self.prefixed,
                tools={s: self._routed(s, "tools") for s in self._listed("tools")},
                prompts={s: self._routed(s, "prompts") for s in self._listed("prompts")},
                transparent=not any(not c.empty for c in self._curations.values()),
            )

    def _routed(self, server: str, key: str) -> list[str]:
        """The names of ``server`` that reach it: those listed, then those plugins withhold."""
        withheld = self._withheld[server].get(key, [])
        curation = self._curations.get(server)
        if withheld and curation is not None:
            withheld = curation.items(key, withheld)
        return _names(self._shown[server].get(key, [])) + _names(withheld)

    def _listed(self, key: str) -> list[str]:
        """The servers whose list ``key`` is known (fetched since they last became ready)."""
        return [server for server, lists in self._lists.items() if key in lists]


def _names(items: list[Item]) -> list[str]:
    return [_str_decoder.decode(item["name"]) for item in items if "name" in item]


def decode_page(result: msgspec.Raw, key: str) -> tuple[list[Item], str | None]:
    """One page of an upstream's list: its items (members still raw) and the next cursor."""
    body = jsonrpc.object_fields(result, f"the {key} list result")
    items = _items_decoder.decode(body[key]) if key in body else []
    # an identifying member that is not a string could be neither renamed nor routed: leave it out
    member = LIST_KINDS[key].field
    items = [item for item in items if member not in item or bytes(item[member]).startswith(b'"')]
    cursor = jsonrpc.field_str(body, "nextCursor")
    return items, cursor or None


_execution: Final = msgspec.json.Decoder(dict[str, Any])


def requires_task(item: Item) -> bool:
    """A tool that runs only as an MCP task (``execution.taskSupport: required``): the gateway
    offers no tasks to its clients, so such a tool could never be called through it."""
    raw = item.get("execution")
    if raw is None:
        return False
    try:
        execution = _execution.decode(raw)
    except msgspec.DecodeError:
        return False
    return execution.get("taskSupport") == "required"


def wants(capabilities: dict[str, Any], key: str) -> bool:
    return LIST_KINDS[key].capability in capabilities
