"""The shared machinery of the plugins that look inside payloads (secrets, PII, prompt injection).

Every string of a payload is scanned wherever it sits (arguments, content blocks, resource text,
structured content, error messages), object keys included (a key with a finding is renamed to
its transformed text). A finding is a span of a string with a kind;
the plugin then blocks (deny, naming kinds and places, never the value) or rewrites the strings
(``redact``: the span becomes ``[REDACTED:<kind>]``; a subclass may transform differently). The
walk copies only what it changes; a payload without findings is returned as the same object.

Sibling strings of one object or list are also scanned joined together (``split_fields``), for
detectors that opt in: a value cut into pieces across fields is found and every piece redacted.
So are the ``text`` members of the blocks of one list (content blocks): a value cut across two
text blocks is found too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import msgspec

from watchgate.plugins.api import ALLOW, Plugin, PluginContext, PluginMessage, Verdict, deny, modify

Direction = Literal["request", "response", "notification", "list"]
Path = tuple[Any, ...]  # (parent, key) pairs, rendered only for a finding
MAX_PLACES = 3


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    kind: str


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    where: str


class ContentConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """What every content plugin accepts; subclasses add their own keys."""

    directions: tuple[Direction, ...] = ("request", "response", "notification")


class ContentFilter(Plugin):
    """Scan strings with :meth:`find`; block or rewrite. Subclasses set ``label`` and ``find``."""

    Config: ClassVar[type[Any]] = ContentConfig
    modes: ClassVar[tuple[str, ...]] = ("redact", "block", "audit_only")
    min_length: ClassVar[int] = 1  # strings shorter than this cannot hold a finding
    label: ClassVar[str] = "content"  # "<kinds> found in <where>" reads "secret(s)", "PII", ...
    joins: bool = False  # scan sibling strings joined together (find_joined)

    def __init__(self, config: Any, *, mode: str, setup: Any) -> None:
        super().__init__(config, mode=mode, setup=setup)
        self._directions = frozenset(config.directions)

    # --- what subclasses provide ----------------------------------------------------------------
    def find(self, text: str) -> list[Span]:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def find_joined(self, text: str) -> list[Span]:  # pragma: no cover - only called with joins
        """Findings in sibling strings joined together (when ``joins`` is set)."""
        return []

    def transform(self, text: str, spans: list[Span]) -> str:
        """The rewritten string (``redact`` and ``annotate`` modes)."""
        return redact(text, spans)

    # --- the plugin methods ---------------------------------------------------------------------
    def check_request(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        return self._check(message.params, "params", "request")

    def check_response(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        if message.error is not None:
            return self._check(message.error, "error", "response")
        return self._check(message.result, "result", "response")

    def check_notification(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        return self._check(message.params, "params", "notification")

    def filter_list(self, kind: str, items: list[dict[str, Any]], ctx: PluginContext) -> list[dict[str, Any]]:
        if "list" not in self._directions:
            return items
        kept: list[dict[str, Any]] = []
        changed = False
        for item in items:
            findings: list[Finding] = []
            new = self._walk(item, (None, _item_name(kind, item)), findings)
            if findings:
                changed = True
                member = _MEMBERS.get(kind, "name")
                if self.mode != "block" and new.get(member) == item.get(member):  # a name is not rewritten
                    kept.append(new)
            else:
                kept.append(item)
        return kept if changed else items

    def _check(self, body: Any, root: str, direction: Direction) -> Verdict:
        if direction not in self._directions or body is None:
            return ALLOW
        findings: list[Finding] = []
        new = self._walk(body, (None, root), findings)
        if not findings:
            return ALLOW
        reason = describe(self.label, findings)
        if self.mode == "block":
            return deny(reason)
        return modify(new, reason)

    # --- the walk -------------------------------------------------------------------------------
    def _walk(self, value: Any, path: Path, findings: list[Finding]) -> Any:
        if isinstance(value, str):
            return self._text(value, path, findings) if len(value) >= self.min_length else value
        members: Iterable[tuple[Any, Any]]
        if isinstance(value, dict):
            members = value.items()
        elif isinstance(value, list):
            members = enumerate(value)
        else:
            return value
        out: Any = None
        strings = 0
        minimum = self.min_length
        renamed = (  # JSON keys are strings; most are shorter than anything a detector finds
            self._renamed_keys(value, path, findings)
            if isinstance(value, dict) and max(map(len, value), default=0) >= minimum
            else None
        )
        for key, item in members:
            label = renamed.get(key, key) if renamed else key  # a place never quotes a finding
            if isinstance(item, str):
                strings += 1
                if len(item) < minimum:
                    continue
                new = self._text(item, (path, label), findings)
            elif isinstance(item, dict | list):
                new = self._walk(item, (path, label), findings)
            else:
                continue
            if new is not item:
                if out is None:
                    out = dict(value) if isinstance(value, dict) else list(value)
                out[key] = new
        if strings >= 2 and self.joins:
            out = self._joined(value, out, path, findings)
            out = None if out is value else out
        if renamed:
            out = _rename(value if out is None else out, renamed)
        elif self.joins and isinstance(value, list) and len(value) >= 2:
            out = self._across_blocks(value, out, path, findings)
        return value if out is None else out

    def _renamed_keys(self, value: dict[Any, Any], path: Path, findings: list[Finding]) -> dict[Any, str]:
        """Object keys are text a peer controls too: a key with a finding is renamed."""
        renamed: dict[Any, str] = {}
        for key in value:
            if not isinstance(key, str) or len(key) < self.min_length:
                continue
            spans = self.find(key)
            if spans:
                findings.extend(Finding(kind, f"{render(path)} (a key)") for kind in _kinds(spans))
                renamed[key] = self.transform(key, spans)
        return renamed

    def _across_blocks(self, value: list[Any], out: Any, path: Path, findings: list[Finding]) -> Any:
        """The ``text`` of the blocks of one list scanned as one text (a value cut across blocks)."""
        current = value if out is None else out
        blocks = [i for i, b in enumerate(current) if isinstance(b, dict) and isinstance(b.get("text"), str)]
        if len(blocks) < 2:
            return out
        texts = {i: current[i]["text"] for i in blocks}
        joined = self._joined(texts, None, path, findings)
        if joined is texts:
            return out
        fresh = list(current)
        for i in blocks:
            if joined[i] is not texts[i]:
                fresh[i] = {**current[i], "text": joined[i]}
        return fresh

    def _text(self, text: str, path: Path, findings: list[Finding]) -> str:
        spans = self.find(text)
        if not spans:
            return text
        where = render(path)
        findings.extend(Finding(kind, where) for kind in _kinds(spans))
        return self.transform(text, spans)

    def _joined(self, value: Any, out: Any, path: Path, findings: list[Finding]) -> Any:
        """Sibling strings not flagged on their own, scanned as one text."""
        members = value.items() if isinstance(value, dict) else enumerate(value)
        pieces = [(k, v) for k, v in members if isinstance(v, str) and (out is None or out[k] is v)]
        if len(pieces) < 2:
            return value if out is None else out
        spans = self.find_joined("".join(item for _, item in pieces))
        for span in spans:
            start, involved = 0, []
            for key, item in pieces:
                end = start + len(item)
                if start < span.end and span.start < end:
                    involved.append(key)
                start = end
            if len(involved) < 2:
                continue  # within one string: found (or not) when that string was scanned
            if out is None:
                out = dict(value) if isinstance(value, dict) else list(value)
            for key in involved:
                out[key] = self.transform(out[key], [Span(0, len(out[key]), span.kind)])
            findings.append(Finding(span.kind, f"{render(path)} (split across {len(involved)} fields)"))
        return value if out is None else out


def _rename(value: dict[Any, Any], renamed: dict[Any, str]) -> dict[Any, Any]:
    fresh: dict[Any, Any] = {}
    for key, item in value.items():
        new_key = renamed.get(key, key)
        while new_key in fresh:  # two keys redacted alike: keep both values
            new_key += "'"
        fresh[new_key] = item
    return fresh


def redact(text: str, spans: list[Span]) -> str:
    """Each span replaced by ``[REDACTED:<kind>]``; overlapping spans merge (the first kind wins)."""
    parts: list[str] = []
    position = 0
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if span.end <= position:
            continue
        parts.append(text[position : max(position, span.start)])
        parts.append(f"[REDACTED:{span.kind}]")
        position = span.end
    parts.append(text[position:])
    return "".join(parts)


def overlaps(span: Span, spans: Iterable[Span]) -> bool:
    return any(span.start < other.end and other.start < span.end for other in spans)


def render(path: Path) -> str:
    keys: list[Any] = []
    node: Any = path
    while node is not None:
        node, key = node
        keys.append(key)
    text = ""
    for key in reversed(keys):
        if isinstance(key, int):
            text += f"[{key}]"
        else:
            text += f".{key}" if text else str(key)
    return text


def describe(label: str, findings: list[Finding]) -> str:
    """``secret (aws_access_key) found in params.arguments.text`` — kinds and places, no values."""
    kinds = sorted({f.kind for f in findings})
    places = list(dict.fromkeys(f.where for f in findings))
    where = ", ".join(places[:MAX_PLACES])
    if len(places) > MAX_PLACES:
        where += f" and {len(places) - MAX_PLACES} more"
    return f"{label} ({', '.join(kinds)}) found in {where}"


def _kinds(spans: list[Span]) -> list[str]:
    return list(dict.fromkeys(span.kind for span in spans))


_MEMBERS = {"resources": "uri", "resourceTemplates": "uriTemplate"}


def _item_name(kind: str, item: dict[str, Any]) -> str:
    return f"{kind}[{item.get(_MEMBERS.get(kind, 'name'))!r}]"
