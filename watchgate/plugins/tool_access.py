"""``tool_access``: which tools, prompts and resources of a server a client may see and use.

Per kind, ``allow`` (if given, only names matching one of its globs) and ``deny`` (never these);
deny wins. A hidden item is left out of the lists and a call to it is refused with -32010 even
when the client guesses the name. Configure it globally and override it per server.

Matching: fnmatch globs (``*``, ``?``, ``[...]``), tool and prompt names matched against the
upstream's own name (not the namespaced one). Allow patterns match exactly (case-sensitive);
deny patterns also match look-alikes: other case, full-width or Cyrillic/Greek letters, hidden
or blank characters (see ``names.py``). With ``strict_names`` (default) a tool or prompt name
with anything but printable ASCII without spaces is refused outright. Resource URIs are matched
as given *and* with their path percent-decoded and ``..`` resolved: both must pass. Resource
templates are hidden by deny patterns only (a template is not a URI an allow list can judge).
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

import msgspec

from watchgate.config.schema import AccessMatch
from watchgate.plugins.api import ALLOW, Plugin, PluginContext, PluginMessage, Verdict, deny
from watchgate.plugins.names import Globs, normalize_uri, plain

_CACHE_SIZE: Final = 4096


class Rules(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    allow: tuple[str, ...] | None = None  # None: everything not denied
    deny: tuple[str, ...] = ()


class CallerRules(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """More rules for the callers ``match`` names (their principal: user, users, groups)."""

    match: AccessMatch  # as the config's access rules match: user, users, groups, claims
    tools: Rules = Rules()
    prompts: Rules = Rules()
    resources: Rules = Rules()


class ToolAccessConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    tools: Rules = Rules()
    prompts: Rules = Rules()
    resources: Rules = Rules()
    strict_names: bool = True
    #: per caller, first match: its rules apply on top of the ones above, to calls (lists are
    #: every client's; hide items per caller with the config's ``access`` rules)
    callers: tuple[CallerRules, ...] = ()


class _Policy:
    def __init__(self, kind: str, rules: Rules, strict: bool) -> None:
        self.kind = kind
        self.allow = Globs(rules.allow) if rules.allow is not None else None
        self.deny = Globs(rules.deny)
        self.strict = strict and kind != "resources"
        self.open = self.allow is None and not self.deny and not self.strict
        self._cache: dict[str, str | None] = {}

    def refuse(self, name: str) -> str | None:
        """Why ``name`` is refused, or None."""
        if self.open:
            return None
        if name in self._cache:
            return self._cache[name]
        reason = self._judge(name)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[name] = reason
        return reason

    def _judge(self, name: str) -> str | None:
        singular = self.kind[:-1]
        if self.strict and not plain(name):
            return f"the {singular} name has blank, hidden or non-ASCII characters"
        candidates = [name] if self.kind != "resources" else list(dict.fromkeys([name, normalize_uri(name)]))
        for candidate in candidates:
            pattern = self.deny.lookalike(candidate)
            if pattern is not None:
                return f"{singular} {name!r} is denied on this server (rule {pattern!r})"
            if self.allow is not None and self.allow.exact(candidate) is None:
                return f"{singular} {name!r} is not allowed on this server"
        return None


class ToolAccessPlugin(Plugin):
    Config: ClassVar[type[Any]] = ToolAccessConfig
    priority: ClassVar[int] = 10

    def __init__(self, config: ToolAccessConfig, *, mode: str, setup: Any) -> None:
        super().__init__(config, mode=mode, setup=setup)
        self._policies = {
            kind: _Policy(kind, getattr(config, kind), config.strict_names)
            for kind in ("tools", "prompts", "resources")
        }
        self._callers = [
            (entry.match, {kind: _Policy(kind, getattr(entry, kind), False) for kind in self._policies})
            for entry in config.callers
        ]

    def check_request(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        kind = _kind_of(ctx.method, message.params)
        if kind is None or ctx.name is None:
            return ALLOW
        reason = self._policies[kind].refuse(ctx.name)
        principal = ctx.principal
        if reason is None and self._callers and principal is not None:
            for match, policies in self._callers:
                if principal.is_one_of(match.user, match.users, match.groups, match.claims):
                    why = policies[kind].refuse(ctx.name)
                    reason = None if why is None else f"{why} for {principal.name!r}"
                    break
        return ALLOW if reason is None else deny(reason)

    def filter_list(self, kind: str, items: list[dict[str, Any]], ctx: PluginContext) -> list[dict[str, Any]]:
        if kind == "resourceTemplates":
            globs = self._policies["resources"].deny
            if not globs:
                return items
            kept = [
                i for i in items if not isinstance(t := i.get("uriTemplate"), str) or not globs.lookalike(t)
            ]
            return kept if len(kept) != len(items) else items
        policy = self._policies[kind]
        if policy.open:
            return items
        member = "uri" if kind == "resources" else "name"
        kept = [
            item for item in items if not isinstance(n := item.get(member), str) or policy.refuse(n) is None
        ]
        return kept if len(kept) != len(items) else items


def _kind_of(method: str, params: Any) -> str | None:
    if method == "tools/call":
        return "tools"
    if method == "prompts/get":
        return "prompts"
    if method in ("resources/read", "resources/subscribe"):
        return "resources"
    if method == "completion/complete" and isinstance(params, dict):
        ref = params.get("ref")
        if isinstance(ref, dict):
            return "prompts" if ref.get("type") == "ref/prompt" else "resources"
    return None
