"""YAML text to typed structs, keeping track of where every value was written.

``yaml.safe_load`` throws positions away and msgspec names a bad value by path
(``$.proxy.upstreams[1].max_restarts``) and stops at the first one. A person fixing a
configuration wants every mistake at once, each with the line to edit. So the node graph is
composed first to index ``path -> line``, and :func:`convert` keeps converting after an error,
setting the offending value aside each time, until the data converts or nothing is left to
set aside. Nothing here knows Watchgate's schema.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from dataclasses import dataclass
from types import EllipsisType
from typing import Any, Generic, TypeVar

import msgspec
import msgspec.inspect as mi
import yaml

from watchgate.errors import YamlSyntaxError

T = TypeVar("T")
TypeT = TypeVar("TypeT", bound=mi.Type)
Segment = str | int | EllipsisType

MERGE_TAG = "tag:yaml.org,2002:merge"
# A document with more mistakes than this is better fixed in rounds than reported in full.
MAX_ISSUES = 100

_AT = re.compile(r"^(?P<msg>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?$", re.S)
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_GOT = re.compile(r", got `[^`]*`$")
_TICKED = re.compile(r"`([^`]*)`")
_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "null": "null",
}


@dataclass(frozen=True)
class Issue:
    """One problem found in a document; ``line`` is set only when the path alone cannot place it."""

    path: str
    message: str
    line: int | None = None


@dataclass(frozen=True)
class YamlDocument:
    data: Any
    lines: dict[str, int]
    issues: tuple[Issue, ...] = ()

    def line_for(self, path: str) -> int | None:
        """Line of ``path``, or of its nearest ancestor that was written down.

        A missing key has no line of its own; the mapping it belongs in is where it must go.
        """
        while path not in self.lines:
            if not path:
                return None
            path = parent_path(path)
        return self.lines[path]


def join_path(parent: str, segment: Segment) -> str:
    if isinstance(segment, EllipsisType):
        return f"{parent}[...]"
    if isinstance(segment, int):
        return f"{parent}[{segment}]"
    return f"{parent}.{segment}" if parent else segment


def parent_path(path: str) -> str:
    return path[: max(path.rfind("."), path.rfind("["), 0)]


def show(value: Any) -> str:
    """Render a value the way it would be written in YAML, or name its kind if it is large."""
    if value is None or isinstance(value, str | int | float | bool):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def unknown_key_message(key: object, valid: list[str]) -> str:
    close = difflib.get_close_matches(str(key), valid, n=1) if isinstance(key, str) else []
    if close:
        return f"unknown key {key!r} (did you mean {close[0]!r}?)"
    if valid:
        return f"unknown key {key!r} (expected one of: {', '.join(valid)})"
    return f"unknown key {key!r}"


def load_yaml(text: str) -> YamlDocument:
    """Parse one YAML document with the safe loader; raise :class:`YamlSyntaxError` if malformed."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return YamlDocument(None, {})
            lines, issues = _index(node)
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlSyntaxError(_describe(exc), mark.line + 1 if mark else None) from None
    except yaml.reader.ReaderError as exc:
        message = f"character #x{exc.character:04x} is not allowed: {exc.reason}"
        raise YamlSyntaxError(message, text.count("\n", 0, exc.position) + 1) from None
    return YamlDocument(data, lines, tuple(issues))


def _describe(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or "invalid YAML"
    if exc.context and exc.context_mark and exc.problem_mark:
        return f"{problem} ({exc.context} started at line {exc.context_mark.line + 1})"
    if exc.context:
        return f"{exc.context}: {problem}"
    return problem


def _index(root: yaml.Node) -> tuple[dict[str, int], list[Issue]]:
    """Map each path to the line of its key (or list item), and flag repeated keys.

    PyYAML keeps the last of two equal keys without a word, which is how a typo'd second
    ``command:`` silently replaces the first. An aliased node is indexed once: a recursive
    alias would otherwise never end, and a value reached through an alias is best reported
    where the alias is used anyway.
    """
    lines: dict[str, int] = {}
    issues: list[Issue] = []
    seen: set[int] = set()

    def walk(node: yaml.Node, path: str, line: int) -> None:
        lines[path] = line
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key, key_line = str(key_node.value), key_node.start_mark.line + 1
                if key in first:
                    issues.append(
                        Issue(
                            join_path(path, key),
                            f"duplicate key {key!r} (first given at line {first[key]})",
                            key_line,
                        )
                    )
                first[key] = key_line
                walk(value_node, join_path(path, key), key_line)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, join_path(path, i), item.start_mark.line + 1)

    walk(root, "", root.start_mark.line + 1)
    return lines, issues


@dataclass(frozen=True)
class Conversion(Generic[T]):
    """What :func:`convert` found.

    ``value`` is what converted once every bad value had been set aside (``None`` if even that
    failed), so rules between fields can still be checked on the rest; it is only trustworthy
    when ``issues`` is empty. ``set_aside`` holds the paths (relative to the converted data)
    that were removed, for skipping the checks that would only repeat a reported problem.
    """

    value: T | None
    issues: list[Issue]
    set_aside: frozenset[str]


def convert(data: Any, type_: type[T], *, path: str = "") -> Conversion[T]:
    """``msgspec.convert`` that reports every problem it can find, not only the first.

    ``data`` is not modified; issue paths are prefixed with ``path``.
    """
    work = copy.deepcopy(data)
    issues: list[Issue] = []
    dropped: set[str] = set()
    value: T | None = None
    for _ in range(MAX_ISSUES):
        try:
            value = msgspec.convert(work, type_)
            break
        except msgspec.ValidationError as exc:
            segments, message, drop = _diagnose(str(exc), work, type_)
            if _render(segments) in dropped:
                break  # a required key that an earlier problem set aside
            issues.append(Issue(_render(segments, path), message))
            if drop is None:
                break
            _delete(work, drop)
            dropped.add(_render(drop))
    return Conversion(value, issues, frozenset(dropped))


def _render(segments: list[Segment], prefix: str = "") -> str:
    for segment in segments:
        prefix = join_path(prefix, segment)
    return prefix


def _parse(path: str) -> list[Segment]:
    segments: list[Segment] = []
    for key, index in _SEGMENT.findall(path):
        if key:
            segments.append(key)
        else:
            segments.append(... if index == "..." else int(index))
    return segments


def _get(data: Any, segments: list[Segment]) -> Any:
    """The value at a path msgspec reported, which therefore exists."""
    for segment in segments:
        data = data[segment]
    return data


def _delete(data: Any, segments: list[Segment]) -> None:
    del _get(data, segments[:-1])[segments[-1]]


def _diagnose(text: str, work: Any, type_: type[Any]) -> tuple[list[Segment], str, list[Segment] | None]:
    """Turn one msgspec error into (where, what, what to set aside so the next error shows)."""
    match = _AT.fullmatch(text)
    assert match is not None  # the pattern matches any string
    message, pattern = match["msg"], _parse(match["path"] or "")
    segments = _resolve(pattern, work, type_)
    if match["key"]:
        key = _culprit(pattern, segments, work, type_, key_error=True)
        return segments, f"invalid key: {_translate(message, key)}", [*segments, key]
    if field := _ticked(message, "Object contains unknown field "):
        structs = _members(_type_at(mi.type_info(type_), segments), mi.StructType)
        valid = [f.encode_name for f in structs[0].fields] if structs else []
        return [*segments, field], unknown_key_message(field, valid), [*segments, field]
    if field := _ticked(message, "Object missing required field "):
        return [*segments, field], f"missing required key {field!r}", None
    # Setting aside one item of a list would renumber the items after it; set the list aside.
    drop = list(segments)
    while drop and not isinstance(drop[-1], str):
        drop.pop()
    value = _get(work, segments)
    if message.startswith("Invalid enum value"):
        info = _type_at(mi.type_info(type_), segments)
        choices = [str(e.value) for m in _members(info, mi.EnumType) for e in m.cls]
        choices += [str(v) for m in _members(info, mi.LiteralType) for v in m.values]
        return segments, f"expected one of {', '.join(choices)}, got {show(value)}", drop or None
    return segments, _translate(message, value), drop or None


def _resolve(pattern: list[Segment], work: Any, type_: type[Any]) -> list[Segment]:
    """msgspec writes a dict entry as ``[...]``; put the actual keys in its place."""
    segments = list(pattern)
    while ... in segments:
        at = segments.index(...)
        segments[at] = _culprit(pattern, segments[:at], work, type_, key_error=False)
    return segments


def _culprit(
    pattern: list[Segment],
    container: list[Segment],
    work: Any,
    type_: type[Any],
    *,
    key_error: bool,
) -> Any:
    """The first entry of the dict at ``container`` that fails on its own, tried one by one.

    msgspec checks entries in order, so that is the entry its error was about.
    """
    at = len(container)
    table = _get(work, container)
    saved = dict(table)
    try:
        for key, value in saved.items():
            table.clear()
            table[key] = value
            try:
                msgspec.convert(work, type_)
            except msgspec.ValidationError as exc:
                match = _AT.fullmatch(str(exc))
                assert match is not None
                here = _parse(match["path"] or "")[: at + 1] == pattern[: at + 1]
                if here and (bool(match["key"]) or not key_error):
                    return key
    finally:
        table.clear()
        table.update(saved)
    return next(iter(saved))  # pragma: no cover - unreachable while msgspec checks in order


def _ticked(message: str, prefix: str) -> str | None:
    if message.startswith(prefix + "`") and message.endswith("`"):
        return message[len(prefix) + 1 : -1]
    return None


def _translate(message: str, value: Any) -> str:
    """msgspec's ``Expected `int` >= 0`` -> ``expected an integer >= 0, got -1``."""
    text = _TICKED.sub(
        lambda m: " or ".join(_TYPE_WORDS.get(t, t) for t in m[1].split(" | ")),
        _GOT.sub("", message),
    )
    if not message[:1].isupper():  # a rule's own sentence (a __post_init__): it says what was wrong
        return text
    return f"{text[:1].lower()}{text[1:]}, got {show(value)}"


def _type_at(info: mi.Type, segments: list[Segment]) -> mi.Type | None:
    current: mi.Type | None = info
    for segment in segments:
        steps = (_step(member, segment) for member in _members(current, mi.Type))
        current = next((step for step in steps if step is not None), None)
    return current


def _step(info: mi.Type, segment: Segment) -> mi.Type | None:
    if isinstance(info, mi.StructType) and isinstance(segment, str):
        return {f.encode_name: f.type for f in info.fields}.get(segment)
    if isinstance(info, mi.DictType):
        return info.value_type
    if isinstance(info, mi.ListType | mi.VarTupleType) and isinstance(segment, int):
        return info.item_type
    return None


def _members(info: mi.Type | None, kind: type[TypeT]) -> list[TypeT]:
    """The members of ``info`` (each union member, or ``info`` itself) of one kind."""
    members = info.types if isinstance(info, mi.UnionType) else (info,)
    return [member for member in members if isinstance(member, kind)]
