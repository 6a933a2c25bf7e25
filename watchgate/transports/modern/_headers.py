"""The ``x-mcp-header`` annotations of a tool's input schema (2026-07-28): which arguments a
request mirrors into ``Mcp-Param-*`` headers, and how a value is written in a header."""

from __future__ import annotations

import base64
import re
from typing import Any, Final

import msgspec

__all__ = ["at", "header_paths", "header_value"]

_TOKEN: Final = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field-name (tchar)
_SAFE_VALUE: Final = re.compile(r"^[\x20-\x7e]*$")
_MAX_SAFE_INTEGER: Final = 2**53 - 1


def header_paths(schema: Any) -> dict[str, tuple[str, ...]]:
    """Each ``x-mcp-header`` of a tool's input schema and the property path it mirrors.

    Raises ValueError saying which rule an annotation breaks: empty, not a header token,
    not unique (case-insensitively), not on a string/integer/boolean, or not reachable from the
    root through ``properties`` alone."""
    found: dict[str, tuple[str, ...]] = {}
    seen: set[str] = set()

    def walk(node: Any, path: tuple[str, ...], reachable: bool) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, path, False)
            return
        if not isinstance(node, dict):
            return
        if "x-mcp-header" in node:
            header = node["x-mcp-header"]
            if not reachable or not path:
                raise ValueError(
                    f"at {'/'.join(path) or 'the root'} is not reachable through properties alone"
                )
            if not isinstance(header, str) or not header:
                raise ValueError(f"on {'/'.join(path)} is empty")
            if not _TOKEN.match(header):
                raise ValueError(f"{header!r} is not a valid header name")
            if header.lower() in seen:
                raise ValueError(f"{header!r} is not unique")
            if node.get("type") not in ("string", "integer", "boolean"):
                raise ValueError(f"{header!r} is on a {node.get('type')!r}, not a string, integer or boolean")
            seen.add(header.lower())
            found[header] = path
        for key, child in node.items():
            if key == "properties" and isinstance(child, dict):
                for name, sub in child.items():
                    walk(sub, (*path, name), reachable)
            elif key != "x-mcp-header":
                walk(child, path, False)

    walk(schema, (), True)
    return found


def at(arguments: Any, path: tuple[str, ...]) -> Any:
    node = arguments
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def header_value(value: Any) -> str:
    """A value as a header carries it: plain when it is safe ASCII, else the base64 sentinel."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int) and abs(value) <= _MAX_SAFE_INTEGER:
        text = str(value)
    else:
        text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
    sentinel = text.startswith("=?base64?") and text.endswith("?=")
    if _SAFE_VALUE.match(text) and text == text.strip() and not sentinel:
        return text
    return f"=?base64?{base64.b64encode(text.encode()).decode()}?="
