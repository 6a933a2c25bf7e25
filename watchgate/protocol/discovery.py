"""Tools on demand: the search behind ``find_tools`` (``discovery: {mode: search}``).

A client with fifty servers would send every tool's definition to its model on every turn; in
search mode it lists two tools of the gateway's own instead, and the model asks ``find_tools``
for the ones a task needs. The ranking is BM25, from SQLite's FTS5 (the standard library: no
network, no model): a tool's name split into words (``github__search_issues``, ``getIssue``),
its description, and its parameters' names and descriptions are three columns with weights.
The index holds exactly the tools the caller may see: it is built from the list that caller's
``tools/list`` would return, so a tool the tool manager, a profile or a plugin hides is never
found. It is rebuilt when that list changes.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from watchgate.errors import JsonRpcError

__all__ = [
    "CALL_TOOL",
    "FIND_TOOLS",
    "MAX_LIMIT",
    "ToolIndex",
    "gateway_tools",
    "name_words",
    "query_limit",
]

FIND_TOOLS: Final = "find_tools"
CALL_TOOL: Final = "call_tool"
MAX_LIMIT: Final = 50
#: BM25 weights of the columns (name, description, parameters): a word of the name says most
WEIGHTS: Final = (4.0, 1.0, 1.5)
_MAX_QUERY_WORDS: Final = 64
_WORD: Final = re.compile(r"[A-Za-z0-9]+")
_CAMEL: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_listed: Final = msgspec.json.Decoder(dict[str, Any])

_FIND_DESCRIPTION: Final = (
    "Find the tools for a task among every connected server's tools. Describe the task in a few "
    "words (e.g. 'open a pull request', 'read a file'); the best matches come back, best first, "
    "with their exact names and input schemas. Then run one with call_tool."
)
_CALL_DESCRIPTION: Final = (
    "Run a tool that find_tools returned: give its exact name and its arguments (an object that "
    "follows the tool's input schema). The answer is the tool's own."
)


def gateway_tools() -> list[dict[str, Any]]:
    """The two tools a client lists in search mode."""
    find = {
        "name": FIND_TOOLS,
        "description": _FIND_DESCRIPTION,
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "the task, in a few words"},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "description": "how many"},
            },
            "required": ["query"],
        },
    }
    call = {
        "name": CALL_TOOL,
        "description": _CALL_DESCRIPTION,
        "inputSchema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "the tool's exact name, as find_tools gave it"},
                "arguments": {"type": "object", "description": "the tool's arguments"},
            },
            "required": ["name"],
        },
    }
    return [find, call]


def name_words(name: str) -> str:
    """``github__searchIssues`` -> ``github search issues``: a name as words the index can match."""
    return " ".join(word.lower() for part in _WORD.findall(name) for word in _CAMEL.split(part) if word)


def query_limit(value: object, default: int) -> int:
    """``limit`` as given (1 to `MAX_LIMIT`; more is cut to it), or ``default``."""
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise JsonRpcError(-32602, f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return min(value, MAX_LIMIT)


class ToolIndex:
    """The tools one caller may see, searchable. ``listed`` is the ``tools/list`` result that
    caller gets in list mode (raw)."""

    def __init__(self, listed: bytes) -> None:
        tools = _listed.decode(listed).get("tools")
        self.tools = [t for t in tools or () if isinstance(t, dict) and isinstance(t.get("name"), str)]
        self._db = sqlite3.connect(":memory:")
        self._db.execute(
            "CREATE VIRTUAL TABLE tools USING fts5(name, description, params, tokenize='porter unicode61')"
        )
        self._db.executemany(
            "INSERT INTO tools(rowid, name, description, params) VALUES (?, ?, ?, ?)",
            [
                (n, name_words(t["name"]), _text(t.get("description")), _params(t))
                for n, t in enumerate(self.tools)
            ],
        )

    def search(self, query: str, limit: int) -> list[dict[str, Any]]:
        """The best ``limit`` tools for ``query``, best first (none when no word matches)."""
        words = list(dict.fromkeys(name_words(query).split()))[:_MAX_QUERY_WORDS]
        if not words:
            raise JsonRpcError(-32602, "query must name the task in words")
        match = " OR ".join(f'"{word}"' for word in words)  # quoted: no FTS5 syntax from a client
        weights = ", ".join(str(w) for w in WEIGHTS)
        rows = self._db.execute(
            f"SELECT rowid FROM tools WHERE tools MATCH ? ORDER BY bm25(tools, {weights}), rowid LIMIT ?",
            (match, limit),
        ).fetchall()
        return [self.tools[row] for (row,) in rows]

    def close(self) -> None:
        self._db.close()


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _params(tool: dict[str, Any]) -> str:
    schema = tool.get("inputSchema")
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return ""
    parts: list[str] = []
    for key, spec in properties.items():
        parts.append(name_words(str(key)))
        if isinstance(spec, dict):
            parts.append(_text(spec.get("description")))
    return " ".join(parts)


def summary(tools: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What ``find_tools`` answers: the tools as structured content, and as text for clients
    that read only text."""
    found = [
        {k: tool[k] for k in ("name", "title", "description", "inputSchema", "annotations") if k in tool}
        for tool in tools
    ]
    text = msgspec.json.encode(found).decode() if found else "no tool matches; describe the task otherwise"
    return {"content": [{"type": "text", "text": text}], "structuredContent": {"tools": found}}
