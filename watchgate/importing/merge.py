"""The servers found, as upstreams of ``supervisor.yaml``: named, deduplicated, merged.

Two entries are the same server when they run the same command with the same environment, or
reach the same URL, whatever each client calls them; one already in the config is not added
again, so importing twice changes nothing. Names become valid server names (letters, digits and
``-``, 32 at most, unique). An environment value the gateway's own environment holds under the
same name is written as a ``${NAME}`` reference; any other value that looks like a secret is
written as the client had it, and the preview says so.

New entries are appended to the ``proxy.upstreams`` list as text, so the file keeps its
comments and layout; a file in another shape (a single ``upstream:``, a flow-style list) is
written anew from its data, and the caller keeps a backup of it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from watchgate.config.schema import ENV_VAR
from watchgate.importing.sources import FoundServer

__all__ = ["Plan", "Planned", "merged_text", "plan"]

_SECRET_NAME: Final = re.compile(r"TOKEN|SECRET|PASSW|API_?KEY|ACCESS_?KEY|PRIVATE|CREDENTIAL|AUTH", re.I)
_SECRET_VALUE: Final = re.compile(r"^(ghp_|gho_|ghs_|github_pat_|sk-|xox[abprs]-|AKIA|AIza|glpat-|Bearer )")
_MAX_NAME: Final = 32


@dataclass
class Planned:
    """One server to add: its entry, where it was found, what the preview must point out."""

    name: str
    entry: dict[str, Any]
    found: list[FoundServer]
    secrets: list[str] = field(default_factory=list)  # env/header names whose values look secret
    references: list[str] = field(default_factory=list)  # env names written as ${NAME}

    @property
    def kind(self) -> str:
        return str(self.entry.get("transport", "stdio"))


@dataclass
class Plan:
    new: list[Planned] = field(default_factory=list)
    present: list[tuple[FoundServer, str]] = field(default_factory=list)  # (found, its name in the config)
    skipped: list[tuple[FoundServer, str]] = field(default_factory=list)  # (found, why)


def plan(found: list[FoundServer], config_text: str | None, environ: Mapping[str, str]) -> Plan:
    existing = _upstreams(config_text)
    known = {_identity(entry): str(entry.get("name", "default")) for entry in existing}
    taken = {str(entry.get("name", "default")) for entry in existing}
    result = Plan()
    by_identity: dict[tuple[Any, ...], Planned] = {}
    for server in found:
        if server.is_watchgate:
            result.skipped.append((server, "already goes through Watchgate"))
            continue
        entry, secrets, references = _entry(server, environ)
        identity = _identity(entry)
        if identity in known:
            result.present.append((server, known[identity]))
            continue
        planned = by_identity.get(identity)
        if planned is not None:  # the same server in another client: one upstream
            planned.found.append(server)
            continue
        name = _unique(_valid_name(server.name), taken)
        taken.add(name)
        planned = Planned(name, {"name": name, **entry}, [server], secrets, references)
        by_identity[identity] = planned
        result.new.append(planned)
    return result


def _entry(server: FoundServer, environ: Mapping[str, str]) -> tuple[dict[str, Any], list[str], list[str]]:
    secrets: list[str] = []
    references: list[str] = []
    if server.url is not None:
        entry: dict[str, Any] = {"transport": server.transport, "url": server.url}
        if server.headers:
            entry["headers"] = dict(server.headers)
            secrets += [k for k, v in server.headers.items() if _looks_secret(k, v)]
        return entry, secrets, references
    entry = {"command": list(server.command)}
    env: dict[str, str] = {}
    for key, value in server.env.items():
        if not _is_reference(value) and environ.get(key) == value:
            env[key] = "${" + key + "}"  # the gateway's environment has it: no copy in the file
            references.append(key)
            continue
        env[key] = value
        if _looks_secret(key, value):
            secrets.append(key)
    if env:
        entry["env"] = env
    return entry, secrets, references


def _looks_secret(key: str, value: str) -> bool:
    if _is_reference(value) or not value:
        return False
    return bool(_SECRET_NAME.search(key) or _SECRET_VALUE.match(value))


def _is_reference(value: str) -> bool:
    """``${NAME}`` as the whole value (the config's own syntax; ``$${…}`` is a literal)."""
    match = ENV_VAR.fullmatch(value)
    return match is not None and not match.group(1)


def _identity(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    url = entry.get("url")
    if isinstance(url, str):
        return ("remote", url)
    command = entry.get("command") or []
    words = shlex.split(command) if isinstance(command, str) else [str(word) for word in command]
    words += [str(arg) for arg in entry.get("args") or []]
    env = entry.get("env") or {}
    return ("stdio", tuple(words), tuple(sorted((str(k), str(v)) for k, v in env.items())))


def _valid_name(name: str) -> str:
    """A server name (``^[A-Za-z][A-Za-z0-9-]{0,31}$``) as close to ``name`` as it can be."""
    cleaned = re.sub(r"-{2,}", "-", re.sub(r"[^A-Za-z0-9-]+", "-", name)).strip("-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"mcp-{cleaned}".rstrip("-")
    return cleaned[:_MAX_NAME].rstrip("-")


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    for n in range(2, 1000):
        candidate = f"{name[: _MAX_NAME - len(str(n)) - 1]}-{n}"
        if candidate not in taken:
            return candidate
    raise ValueError(f"no free name for {name!r}")  # pragma: no cover - a thousand servers of one name


def _upstreams(config_text: str | None) -> list[dict[str, Any]]:
    if not config_text:
        return []
    document = yaml.safe_load(config_text)
    proxy = document.get("proxy") if isinstance(document, dict) else None
    if not isinstance(proxy, dict):
        return []
    single = proxy.get("upstream")
    if isinstance(single, dict):
        return [single]
    upstreams = proxy.get("upstreams")
    return [u for u in upstreams if isinstance(u, dict)] if isinstance(upstreams, list) else []


# -- writing -----------------------------------------------------------------------------------


def merged_text(config_text: str | None, entries: list[dict[str, Any]]) -> tuple[str, bool]:
    """The config with ``entries`` added to its upstreams, and whether it was appended to as text
    (False: written anew from its data, its comments lost: the caller keeps a backup)."""
    if not config_text or not config_text.strip():
        return _dump({"proxy": {"upstreams": entries}}), True
    appended = _appended(config_text, entries)
    if appended is not None:
        return appended, True
    document = yaml.safe_load(config_text)
    proxy = document.setdefault("proxy", {})
    single = proxy.pop("upstream", None)
    upstreams = list(proxy.get("upstreams") or [])
    if isinstance(single, dict):
        upstreams.append({"name": "default", **single} if "name" not in single else single)
    proxy["upstreams"] = [*upstreams, *entries]
    return _dump(document), False


def _appended(text: str, entries: list[dict[str, Any]]) -> str | None:
    """``entries`` added at the end of a block-style ``proxy.upstreams`` list; None otherwise."""
    sequence = _node(_node(yaml.compose(text), "proxy"), "upstreams")
    if not isinstance(sequence, yaml.SequenceNode) or sequence.flow_style or not sequence.value:
        return None
    lines = text.splitlines(keepends=True)
    last = sequence.value[-1]
    end = min(last.end_mark.line, len(lines) - 1) if last.end_mark.column else last.end_mark.line - 1
    while end > last.start_mark.line and (not lines[end].strip() or lines[end].lstrip().startswith("#")):
        end -= 1  # trailing blank lines and comments stay where they are
    dash = sequence.start_mark.column
    block = []
    for entry in entries:
        for n, line in enumerate(_dump(entry).splitlines()):
            block.append(" " * dash + ("- " if n == 0 else "  ") + line + "\n")
    if not lines[end].endswith("\n"):
        lines[end] += "\n"
    return "".join([*lines[: end + 1], *block, *lines[end + 1 :]])


def _node(node: Any, key: str) -> Any:
    if not isinstance(node, yaml.MappingNode):
        return None
    for name, value in node.value:
        if isinstance(name, yaml.ScalarNode) and name.value == key:
            return value
    return None


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, allow_unicode=True, width=1000)
