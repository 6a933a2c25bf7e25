"""Where each MCP client keeps its servers, and what they say.

Every client names a server and says how to reach it: a command with arguments and environment
(stdio), or a URL with headers (Streamable HTTP or SSE). The shapes differ a little:
``mcpServers`` (Claude Desktop, Claude Code's ``~/.claude.json`` and project ``.mcp.json``,
Cursor, Windsurf with ``serverUrl``) or ``servers`` with a ``type`` (VS Code). Each is read into
one `FoundServer`; what cannot be read is reported, never guessed.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = ["ClientFile", "FoundServer", "Unreadable", "client_files", "given_file", "read_client_file"]

_VSCODE_ENV: Final = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_VSCODE_INPUT: Final = re.compile(r"\$\{input:([^}]+)\}")


class Unreadable(Exception):
    """A file or entry that cannot be read as a client's servers; the message says why."""


@dataclass(frozen=True)
class ClientFile:
    """One client's config file: which client, where, and under which key its servers are."""

    client: str
    path: Path
    key: str = "mcpServers"  # "servers" for VS Code


@dataclass
class FoundServer:
    client: str
    path: Path
    name: str
    transport: str  # stdio | http | sse
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)  # VS Code ${input:…} values Watchgate cannot ask for

    @property
    def identity(self) -> tuple[Any, ...]:
        """What makes two entries the same server, whatever they are called."""
        if self.url is not None:
            return ("remote", self.url)
        return ("stdio", tuple(self.command), tuple(sorted(self.env.items())))

    @property
    def is_watchgate(self) -> bool:
        """An entry that already goes through Watchgate (``watchgate attach``): not imported."""
        words = [Path(word).name for word in self.command[:4]]
        return words[:2] == ["watchgate", "attach"] or words[1:4] == ["-m", "watchgate.cli", "attach"]


def client_files(home: Path, project: Path) -> list[ClientFile]:
    """Every place a supported client keeps its servers, for this user and this project folder."""
    if sys.platform == "darwin":
        app_support = home / "Library" / "Application Support"
        claude_desktop = app_support / "Claude" / "claude_desktop_config.json"
        vscode_user = app_support / "Code" / "User" / "mcp.json"
    elif sys.platform == "win32":  # pragma: no cover - the tests run on Linux
        appdata = Path(os.environ.get("APPDATA", home / "AppData" / "Roaming"))
        claude_desktop = appdata / "Claude" / "claude_desktop_config.json"
        vscode_user = appdata / "Code" / "User" / "mcp.json"
    else:
        config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
        claude_desktop = config / "Claude" / "claude_desktop_config.json"
        vscode_user = config / "Code" / "User" / "mcp.json"
    return [
        ClientFile("Claude Desktop", claude_desktop),
        ClientFile("Claude Code", home / ".claude.json"),
        ClientFile("Claude Code (project)", project / ".mcp.json"),
        ClientFile("Cursor", home / ".cursor" / "mcp.json"),
        ClientFile("Cursor (project)", project / ".cursor" / "mcp.json"),
        ClientFile("VS Code", vscode_user, key="servers"),
        ClientFile("VS Code (project)", project / ".vscode" / "mcp.json", key="servers"),
        ClientFile("Windsurf", home / ".codeium" / "windsurf" / "mcp_config.json"),
    ]


def given_file(path: Path) -> ClientFile:
    """A file named with ``--from``: its shape says how to read it."""
    document = _load(path)
    key = "servers" if "servers" in document and "mcpServers" not in document else "mcpServers"
    return ClientFile(f"file {path.name}", path, key)


def read_client_file(source: ClientFile) -> tuple[list[FoundServer], list[str]]:
    """The servers of one file and the problems met (one line each); a missing file has none."""
    if not source.path.is_file():
        return [], []
    try:
        document = _load(source.path)
    except Unreadable as exc:
        return [], [f"{source.path}: {exc}"]
    servers = document.get(source.key)
    if servers is None:
        return [], []
    if not isinstance(servers, dict):
        return [], [f"{source.path}: {source.key} is not an object"]
    found: list[FoundServer] = []
    problems: list[str] = []
    for name, entry in servers.items():
        try:
            found.append(_server(source, str(name), entry))
        except Unreadable as exc:
            problems.append(f"{source.path}: server {name!r}: {exc}")
    return found, problems


def _load(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise Unreadable(f"cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise Unreadable(f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(document, dict):
        raise Unreadable("not a JSON object")
    return document


def _server(source: ClientFile, name: str, entry: Any) -> FoundServer:
    if not isinstance(entry, dict):
        raise Unreadable("not an object")
    url = entry.get("url") or entry.get("serverUrl")
    kind = str(entry.get("type") or entry.get("transport") or ("http" if url else "stdio")).lower()
    server = FoundServer(source.client, source.path, name, "stdio")
    if url is not None or kind in ("http", "sse", "streamable-http", "streamablehttp"):
        if not isinstance(url, str) or not url:
            raise Unreadable(f"type {kind} without a url")
        server.transport = "sse" if kind == "sse" else "http"
        server.url = _value(server, url)
        server.headers = {str(k): _value(server, str(v)) for k, v in _mapping(entry, "headers").items()}
        return server
    command = entry.get("command")
    if not isinstance(command, str) or not command:
        raise Unreadable("no command and no url")
    args = entry.get("args") or []
    if not isinstance(args, list):
        raise Unreadable("args is not a list")
    server.command = [_value(server, command), *(_value(server, str(a)) for a in args)]
    server.env = {str(k): _value(server, str(v)) for k, v in _mapping(entry, "env").items()}
    return server


def _mapping(entry: dict[str, Any], key: str) -> dict[str, Any]:
    value = entry.get(key) or {}
    if not isinstance(value, dict):
        raise Unreadable(f"{key} is not an object")
    return value


def _value(server: FoundServer, text: str) -> str:
    """VS Code's variables as Watchgate's: ``${env:X}`` is ``${X}``; ``${input:id}`` (a value
    VS Code prompts for) becomes ``${ID}``, to be set in the gateway's environment."""
    text = _VSCODE_ENV.sub(r"${\1}", text)

    def input_variable(match: re.Match[str]) -> str:
        variable = re.sub(r"[^A-Za-z0-9_]", "_", match.group(1)).upper()
        server.inputs.append(variable)
        return "${" + variable + "}"

    return _VSCODE_INPUT.sub(input_variable, text)
