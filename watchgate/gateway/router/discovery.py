"""Search mode in the router (``discovery: {mode: search}``): ``tools/list`` answers the gateway's
own ``find_tools`` and ``call_tool`` (plus the ``always`` tools), ``find_tools`` searches what the
caller may see, and ``call_tool`` becomes the ``tools/call`` it names, routed like any other
(plugins, pins, audit under the real tool's names, progress, cancellation, questions).

``tools/list`` with a ``query`` (the SEP-1821 shape) answers the matching tools in either mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import UNSET

from watchgate.config.schema import DiscoveryConfig, ProfileConfig
from watchgate.errors import JsonRpcError
from watchgate.protocol import jsonrpc
from watchgate.protocol.discovery import CALL_TOOL, FIND_TOOLS, ToolIndex, gateway_tools, query_limit, summary
from watchgate.protocol.jsonrpc import Message

if TYPE_CHECKING:
    from watchgate.protocol.catalog import Catalog
    from watchgate.protocol.profiles import Profile

__all__ = ["ToolSearch"]


class ToolSearch:
    def __init__(
        self, catalog: Catalog, config: DiscoveryConfig, profiles: Mapping[str, ProfileConfig]
    ) -> None:
        self._catalog = catalog
        self.configure(config, profiles)
        self._indexes: dict[str | None, tuple[msgspec.Raw, ToolIndex]] = {}

    def configure(self, config: DiscoveryConfig, profiles: Mapping[str, ProfileConfig]) -> None:
        """The config's discovery and each profile's own (a reload)."""
        self._config = config
        self._profiles = {name: p.discovery for name, p in profiles.items() if p.discovery is not None}

    def config_for(self, profile: Profile | None) -> DiscoveryConfig:
        own = self._profiles.get(profile.name) if profile is not None else None
        return own if own is not None else self._config

    def searching(self, profile: Profile | None) -> bool:
        return self.config_for(profile).mode == "search"

    def _visible(self, profile: Profile | None) -> msgspec.Raw:
        return self._catalog.result("tools") if profile is None else profile.result("tools", self._catalog)

    def index(self, profile: Profile | None) -> ToolIndex:
        """The caller's searchable tools, rebuilt when what it may see changed."""
        key = profile.name if profile is not None else None
        listed = self._visible(profile)
        cached = self._indexes.get(key)
        if cached is not None and cached[0] is listed:
            return cached[1]
        if cached is not None:
            cached[1].close()
        index = ToolIndex(bytes(listed))
        self._indexes[key] = (listed, index)
        return index

    def listed(self, profile: Profile | None) -> dict[str, Any]:
        """``tools/list`` in search mode: the two tools, then the ``always`` ones it may see."""
        always = self.config_for(profile).always
        kept = [t for t in self.index(profile).tools if any(fnmatchcase(t["name"], g) for g in always)]
        return {"tools": [*gateway_tools(), *kept]}

    def queried(self, profile: Profile | None, query: str, limit: object) -> dict[str, Any]:
        """``tools/list`` with a ``query``: the best matches as the list."""
        count = query_limit(limit, self.config_for(profile).limit)
        return {"tools": self.index(profile).search(query, count)}

    def find(self, profile: Profile | None, msg: Message) -> dict[str, Any]:
        """``find_tools``: its arguments checked, the best matches answered."""
        arguments = _arguments(msg)
        query = arguments.get("query")
        if not isinstance(query, str):
            raise JsonRpcError(jsonrpc.INVALID_PARAMS, "find_tools needs a query: the task, in words")
        count = query_limit(arguments.get("limit"), self.config_for(profile).limit)
        return summary(self.index(profile).search(query, count))

    def as_call(self, msg: Message) -> Message:
        """``call_tool({name, arguments})`` as the ``tools/call`` of that tool (``_meta`` kept:
        its progress token and the era's keys go with it)."""
        fields = jsonrpc.params_fields(msg)
        arguments = _arguments(msg)
        name = arguments.get("name")
        if not isinstance(name, str) or name in (FIND_TOOLS, CALL_TOOL):
            raise JsonRpcError(jsonrpc.INVALID_PARAMS, "call_tool needs the name of a tool find_tools gave")
        inner = arguments.get("arguments", {})
        if not isinstance(inner, dict):
            raise JsonRpcError(jsonrpc.INVALID_PARAMS, "call_tool's arguments must be an object")
        fields["name"] = jsonrpc.raw(name)
        fields["arguments"] = jsonrpc.raw(inner)
        return msg.with_params(jsonrpc.raw_fields(fields))


def _arguments(msg: Message) -> dict[str, Any]:
    fields = jsonrpc.params_fields(msg)
    raw = fields.get("arguments", UNSET)
    arguments = jsonrpc.load(raw) if raw is not UNSET else {}
    if not isinstance(arguments, dict):
        raise JsonRpcError(jsonrpc.INVALID_PARAMS, "arguments must be an object")
    return arguments
