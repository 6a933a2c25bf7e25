"""Finding plugins by name, checking their configuration, and merging per-server overrides.

A plugin is named by a built-in name (``secrets``) or a dotted path (``mypkg.plugins:MyPlugin``).
The global ``plugins:`` list applies to every upstream; an upstream's own ``plugins:`` list
overrides entries of the same name key by key (``config`` merged one top-level key at a time)
and may add plugins only that server runs. ``enabled: false`` switches a global plugin off for
that server.

Order: ascending ``priority`` (each plugin class has a default; the built-ins run tool_access 10,
path_guard 20, tool_pinning 30, secrets 40, pii 50, prompt_injection 60, others 100); equal
priorities keep the order of the global list, then the server's own additions in their order.
The same order applies to requests, responses, notifications and lists.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import msgspec
from msgspec import UNSET

from watchgate.config.yamlsource import Issue, convert, join_path
from watchgate.errors import PluginLoadError
from watchgate.plugins.api import Plugin

if TYPE_CHECKING:
    from watchgate.config.schema import PluginConfig

__all__ = ["BUILTINS", "DEFAULT_TIMEOUT", "PluginLoadError", "ResolvedPlugin", "check_entries", "resolve"]

BUILTINS: Final = {
    "tool_access": "watchgate.plugins.tool_access:ToolAccessPlugin",
    "path_guard": "watchgate.plugins.path_guard:PathGuardPlugin",
    "tool_pinning": "watchgate.plugins.tool_pinning:ToolPinningPlugin",
    "secrets": "watchgate.plugins.secrets:SecretsPlugin",
    "pii": "watchgate.plugins.pii:PiiPlugin",
    "prompt_injection": "watchgate.plugins.prompt_injection:PromptInjectionPlugin",
}
DEFAULT_TIMEOUT: Final = 5.0


def load_class(name: str) -> type[Plugin]:
    """The plugin class for a built-in name or a ``package.module:Class`` path."""
    target = BUILTINS.get(name, name)
    module_name, colon, attribute = target.partition(":")
    if not colon or not module_name or not attribute:
        known = ", ".join(BUILTINS)
        raise PluginLoadError(
            f"unknown plugin {name!r} (built-in: {known}; others are named 'package.module:Class')"
        )
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginLoadError(f"cannot import {module_name!r} for plugin {name!r}: {exc}") from None
    except Exception as exc:
        raise PluginLoadError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    for part in attribute.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise PluginLoadError(f"{module_name!r} has no {attribute!r} (plugin {name!r})")
    if not (isinstance(found, type) and issubclass(found, Plugin)):
        raise PluginLoadError(f"{target!r} is not a subclass of watchgate.plugins.Plugin")
    return found


@dataclass(frozen=True)
class ResolvedPlugin:
    """One plugin as it runs for one upstream, every default filled in."""

    name: str
    cls: type[Plugin]
    priority: int
    mode: str
    timeout: float
    config: Any  # the plugin's Config struct
    order: int


def merge(base: PluginConfig | None, override: PluginConfig) -> PluginConfig:
    """``override``'s set keys over ``base``; ``config`` merged one top-level key at a time."""
    if base is None:
        return override
    changes: dict[str, Any] = {}
    for field in ("enabled", "priority", "mode", "timeout"):
        value = getattr(override, field)
        if value is not UNSET:
            changes[field] = value
    if override.config is not UNSET:
        changes["config"] = {**(base.config or {}), **override.config}
    return msgspec.structs.replace(base, **changes)


def resolve(
    global_entries: Sequence[PluginConfig], server_entries: Sequence[PluginConfig]
) -> list[ResolvedPlugin]:
    """The enabled plugins of one upstream, in running order. The entries were checked at load."""
    by_name = {entry.name: entry for entry in global_entries}
    merged = dict(by_name)
    for entry in server_entries:
        merged[entry.name] = merge(by_name.get(entry.name), entry)
    resolved = []
    for order, entry in enumerate(merged.values()):
        if entry.enabled is False:
            continue
        cls = load_class(entry.name)
        config = msgspec.convert(entry.config or {}, cls.Config)
        resolved.append(
            ResolvedPlugin(
                name=entry.name,
                cls=cls,
                priority=cls.priority if entry.priority is UNSET else entry.priority,
                mode=cls.modes[0] if entry.mode is UNSET else entry.mode,
                timeout=DEFAULT_TIMEOUT if entry.timeout is UNSET else entry.timeout,
                config=config,
                order=order,
            )
        )
    resolved.sort(key=lambda plugin: (plugin.priority, plugin.order))
    return resolved


def check_entries(
    entries: Sequence[PluginConfig], path: str, *, base: Sequence[PluginConfig] = ()
) -> list[Issue]:
    """Every problem of one ``plugins:`` list, with YAML paths; ``base`` is the global list when
    ``entries`` are one upstream's overrides (then only what the override adds is reported)."""
    issues: list[Issue] = []
    first: dict[str, str] = {}
    by_name = {entry.name: entry for entry in base}
    for index, entry in enumerate(entries):
        at = join_path(path, index)
        if entry.name in first:
            issues.append(
                Issue(join_path(at, "name"), f"duplicate plugin {entry.name!r} (also {first[entry.name]})")
            )
            continue
        first[entry.name] = at
        try:
            cls = load_class(entry.name)
        except PluginLoadError as exc:
            issues.append(Issue(join_path(at, "name"), str(exc)))
            continue
        inherited = by_name.get(entry.name)
        effective = merge(inherited, entry)
        if entry.mode is not UNSET and entry.mode not in cls.modes:
            choices = ", ".join(cls.modes)
            message = f"the {entry.name} plugin's modes are {choices}; got {entry.mode!r}"
            issues.append(Issue(join_path(at, "mode"), message))
        if inherited is not None and entry.config is UNSET:
            continue  # nothing new to check: the global entry was checked on its own
        converted = convert(effective.config or {}, cls.Config, path=join_path(at, "config"))
        own_keys = set(entry.config or {}) if inherited is not None else None
        issues.extend(_plain(issue) for issue in converted.issues if _reported_here(issue.path, at, own_keys))
    return issues


def _plain(issue: Issue) -> Issue:
    """A plugin's own check (a ``__post_init__`` ValueError) says what is wrong by itself."""
    suffix = ", got a mapping"
    if issue.message.endswith(suffix) and not issue.message.startswith("expected"):
        return Issue(issue.path, issue.message[: -len(suffix)], issue.line)
    return issue


def _reported_here(path: str, at: str, own_keys: set[str] | None) -> bool:
    """In a merged config, a problem under a key the override did not give was reported globally."""
    if own_keys is None:
        return True
    rest = path[len(join_path(at, "config")) :]
    if not rest.startswith("."):
        return True  # about the config as a whole
    key = rest[1:].split(".", 1)[0].split("[", 1)[0]
    return key in own_keys
