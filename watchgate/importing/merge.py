"""The servers found, as upstreams of ``supervisor.yaml``: named, deduplicated, merged.

Two entries are the same server when they run the same command with the same environment, or
reach the same URL, whatever each client calls them; one already in the config is not added
again, so importing twice changes nothing. Names become valid server names (letters, digits and
``-``, 32 at most, unique). Values are written as the client had them (a value that looks like a
secret is pointed out, and the config is kept private: 0600); never as a ``${NAME}`` reference to
this shell's environment, which a daemon started by an MCP client does not have. A server whose
values need a variable that such a daemon will not have (VS Code's ``${input:…}`` and
``${env:…}``) stays in its client: moving it would break it.

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

__all__ = ["CLIENT_ENVIRONMENT", "Plan", "Planned", "merged_text", "plan"]

#: What a daemon started by an MCP client can count on in its environment: the official SDK's
#: stdio client passes a server only these (other clients pass as little or less).
CLIENT_ENVIRONMENT: Final = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER")

_SECRET_NAME: Final = re.compile(r"TOKEN|SECRET|PASSW|API_?KEY|ACCESS_?KEY|PRIVATE|CREDENTIAL|AUTH", re.I)
_SECRET_VALUE: Final = re.compile(r"^(ghp_|gho_|ghs_|github_pat_|sk-|xox[abprs]-|AKIA|AIza|glpat-|Bearer )")
_MAX_NAME: Final = 32
_YAML_ONLY_BREAKS: Final = "\x85\u2028\u2029"


@dataclass
class Planned:
    """One server to add: its entry, where it was found, what the preview must point out."""

    name: str
    entry: dict[str, Any]
    found: list[FoundServer]
    secrets: list[str] = field(default_factory=list)  # env/header names whose values look secret
    notes: list[str] = field(default_factory=list)  # what else the preview must say

    @property
    def kind(self) -> str:
        return str(self.entry.get("transport", "stdio"))


@dataclass
class Plan:
    new: list[Planned] = field(default_factory=list)
    present: list[tuple[FoundServer, str]] = field(default_factory=list)  # (found, its name in the config)
    skipped: list[tuple[FoundServer, str]] = field(default_factory=list)  # (found, why)
    held: list[tuple[FoundServer, str]] = field(default_factory=list)  # stays in its client: why


def plan(found: list[FoundServer], config_text: str | None, environ: Mapping[str, str]) -> Plan:
    """What to add: ``environ`` is what a daemon started by a client will have (`CLIENT_ENVIRONMENT`
    of this one); a server needing more stays in its client."""
    existing = _upstreams(config_text)
    known = {_identity(entry): str(entry.get("name", "default")) for entry in existing}
    taken = {str(entry.get("name", "default")) for entry in existing}
    result = Plan()
    by_identity: dict[tuple[Any, ...], Planned] = {}
    for server in found:
        if server.is_watchgate:
            result.skipped.append((server, "already goes through Watchgate"))
            continue
        entry, secrets = _entry(server)
        identity = _identity(entry)
        if identity in known:
            result.present.append((server, known[identity]))
            continue
        missing = _missing_variables(entry, environ)
        if missing:
            result.held.append((server, _held_reason(server, missing)))
            continue
        planned = by_identity.get(identity)
        if planned is not None:  # the same server in another client: one upstream
            planned.found.append(server)
            continue
        name = _unique(_valid_name(server.name), taken)
        taken.add(name)
        notes = [f"{word!r} will be in your home folder" for word in server.command if word.startswith("~/")]
        planned = Planned(name, {"name": name, **entry}, [server], secrets, notes)
        by_identity[identity] = planned
        result.new.append(planned)
    return result


def _entry(server: FoundServer) -> tuple[dict[str, Any], list[str]]:
    if server.url is not None:
        entry: dict[str, Any] = {"transport": server.transport, "url": server.url}
        if server.headers:
            entry["headers"] = dict(server.headers)
        secrets = [k for k, v in server.headers.items() if _looks_secret(k, v)]
        return entry, secrets
    entry = {"command": list(server.command)}
    if server.env:
        entry["env"] = dict(server.env)
    return entry, [k for k, v in server.env.items() if _looks_secret(k, v)]


def _missing_variables(entry: Mapping[str, Any], environ: Mapping[str, str]) -> list[str]:
    words = [entry.get("url"), *entry.get("command", ()), *entry.get("env", {}).values()]
    words += list(entry.get("headers", {}).values())
    names = [m.group(2) for w in words if isinstance(w, str) for m in ENV_VAR.finditer(w) if not m.group(1)]
    return [name for name in dict.fromkeys(names) if name not in environ]


def _held_reason(server: FoundServer, missing: list[str]) -> str:
    needs = ", ".join("${" + name + "}" for name in missing)
    asked = [name for name in missing if name in server.inputs]
    source = "VS Code asks you for it" if asked else "its client gives it"
    return (
        f"needs {needs} ({source}), which a daemon started by a client will not have; it stays "
        "in its client (to move it, put the value in its env in the config by hand)"
    )


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
    if any(ch in text for ch in _YAML_ONLY_BREAKS) or re.search("\r(?!\n)", text):
        return None  # YAML counts the lines these end, splitting on "\n" would not
    sequence = _node(_node(yaml.compose(text), "proxy"), "upstreams")
    if not isinstance(sequence, yaml.SequenceNode) or sequence.flow_style or not sequence.value:
        return None
    lines = re.findall(r"[^\n]*\n|[^\n]+$", text)
    last = sequence.value[-1]
    end = min(last.end_mark.line, len(lines) - 1) if last.end_mark.column else last.end_mark.line - 1
    while end > last.start_mark.line and (not lines[end].strip() or lines[end].lstrip().startswith("#")):
        end -= 1  # trailing blank lines and comments stay where they are
    dash = sequence.start_mark.column
    block = []
    for entry in entries:
        for n, line in enumerate(_dump(entry).split("\n")[:-1]):
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
    """YAML of ``data``, readable (non-ASCII as it is) unless a value holds a line break only
    YAML knows (NEL, LS, PS): those are written as escapes, or they would change on reading."""
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, allow_unicode=True, width=1000)
    if any(ch in text for ch in _YAML_ONLY_BREAKS):
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=1000)
    return text
