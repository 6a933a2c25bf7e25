"""Where each MCP client keeps its servers, and what they say.

Every client names a server and says how to reach it: a command with arguments and environment
(stdio), or a URL with headers (Streamable HTTP or SSE). The shapes differ a little:
``mcpServers`` (Claude Desktop, Claude Code's ``~/.claude.json`` and project ``.mcp.json``,
Cursor, Windsurf with ``serverUrl``) or ``servers`` with a ``type`` (VS Code, whose files are
JSON with comments and trailing commas). Claude Code also keeps servers per project folder in
``~/.claude.json`` (``projects.<folder>.mcpServers``, where ``claude mcp add`` puts them): the
current folder's are read, the others named. Each server is read into one `FoundServer`; what
cannot be read is reported, never guessed.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import json5

__all__ = [
    "ClientFile",
    "FoundServer",
    "Unreadable",
    "client_files",
    "given_file",
    "load_document",
    "read_client_file",
]

_VSCODE_VARIABLE: Final = re.compile(r"\$\{([^}]*)\}")
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: VS Code's predefined variables (its "Variables reference"): only it can give them a value,
#: except those that mean one thing wherever the server runs.
_VSCODE_PREDEFINED: Final = frozenset(
    {
        "userHome", "workspaceFolder", "workspaceFolderBasename", "file", "fileWorkspaceFolder",
        "relativeFile", "relativeFileDirname", "fileBasename", "fileBasenameNoExtension",
        "fileExtname", "fileDirname", "fileDirnameBasename", "cwd", "lineNumber", "columnNumber",
        "selectedText", "execPath", "defaultBuildTask", "pathSeparator", "/",
    }
)  # fmt: skip


class Unreadable(Exception):
    """A file or entry that cannot be read as a client's servers; the message says why."""


@dataclass(frozen=True)
class ClientFile:
    """One client's config file: which client, where, and under which key its servers are."""

    client: str
    path: Path
    key: str = "mcpServers"  # "servers" for VS Code
    under: tuple[str, ...] = ()  # the keys leading to ``key`` (Claude Code: projects, <folder>)
    project: Path | None = None  # a file of one project folder (a cloned repository may hold it)

    @property
    def vscode(self) -> bool:
        return self.key == "servers"


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
    project: Path | None = None  # found in a project's file, not the user's own

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


def client_files(home: Path, project: Path) -> tuple[list[ClientFile], list[str]]:
    """Every place a supported client keeps its servers, for this user and this project folder
    (each file once, however many of its paths lead to it), and notes on what is left out."""
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
    local, notes = _claude_code_local(home / ".claude.json", project)
    candidates = [
        ClientFile("Claude Desktop", claude_desktop),
        ClientFile("Claude Code", home / ".claude.json"),
        *local,
        ClientFile("Claude Code (project)", project / ".mcp.json", project=project),
        ClientFile("Cursor", home / ".cursor" / "mcp.json"),
        ClientFile("Cursor (project)", project / ".cursor" / "mcp.json", project=project),
        ClientFile("VS Code", vscode_user, key="servers"),
        ClientFile("VS Code (project)", project / ".vscode" / "mcp.json", key="servers", project=project),
        ClientFile("Windsurf", home / ".codeium" / "windsurf" / "mcp_config.json"),
    ]
    seen: set[tuple[Path, str, tuple[str, ...]]] = set()
    unique: list[ClientFile] = []
    for source in candidates:  # run from $HOME, ~/.cursor/mcp.json is the user's and the project's
        place = (source.path.resolve(), source.key, source.under)
        if place not in seen:
            seen.add(place)
            unique.append(source)
    return unique, notes


def _claude_code_local(path: Path, project: Path) -> tuple[list[ClientFile], list[str]]:
    """Claude Code's local scope: this folder's servers, and a note naming the other folders."""
    try:
        projects = load_document(path).get("projects") if path.is_file() else None
    except Unreadable:
        return [], []  # read_client_file says why, once
    if not isinstance(projects, dict):
        return [], []
    here = str(project.resolve())
    found: list[ClientFile] = []
    others: list[str] = []
    for folder, settings in projects.items():
        if not isinstance(settings, dict) or not settings.get("mcpServers"):
            continue
        if folder == here:
            local = ClientFile("Claude Code (local)", path, under=("projects", folder), project=project)
            found.append(local)
        else:
            others.append(str(folder))
    notes = [
        f"Claude Code also has servers for {len(others)} other folder(s), imported when you run "
        f"`watchgate import` there: {', '.join(others)}"
    ]
    return found, notes if others else []


def given_file(path: Path) -> ClientFile:
    """A file named with ``--from``: its shape says how to read it."""
    try:
        document = load_document(path)
    except Unreadable as exc:
        raise Unreadable(f"{path}: {exc}") from None
    key = "servers" if "servers" in document and "mcpServers" not in document else "mcpServers"
    return ClientFile(f"file {path.name}", path, key)


def read_client_file(source: ClientFile) -> tuple[list[FoundServer], list[str]]:
    """The servers of one file and the problems met (one line each); a missing file has none."""
    if not source.path.is_file():
        return [], []
    try:
        document = load_document(source.path)
    except Unreadable as exc:
        return [], [f"{source.path}: {exc}"]
    servers: Any = document
    for key in (*source.under, source.key):
        servers = servers.get(key) if isinstance(servers, dict) else None
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


def load_document(path: Path) -> dict[str, Any]:
    """A client's file as data: JSON, or JSON with comments and trailing commas (VS Code's)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Unreadable(f"cannot read it ({exc})") from None
    try:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            try:
                document = json5.loads(text)
            except ValueError:
                raise Unreadable(f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise Unreadable("nested too deeply to be a client's config") from None
    if not isinstance(document, dict):
        raise Unreadable("not a JSON object")
    return document


def _server(source: ClientFile, name: str, entry: Any) -> FoundServer:
    if not isinstance(entry, dict):
        raise Unreadable("not an object")
    url = entry.get("url") or entry.get("serverUrl")
    kind = str(entry.get("type") or entry.get("transport") or ("http" if url else "stdio")).lower()
    server = FoundServer(source.client, source.path, name, "stdio", project=source.project)
    if url is not None or kind in ("http", "sse", "streamable-http", "streamablehttp"):
        if not isinstance(url, str) or not url:
            raise Unreadable(f"type {kind} without a url")
        server.transport = "sse" if kind == "sse" else "http"
        server.url = _value(source, server, url)
        headers = _mapping(entry, "headers").items()
        server.headers = {str(k): _value(source, server, str(v)) for k, v in headers}
        return server
    command = entry.get("command")
    if not isinstance(command, str) or not command:
        raise Unreadable("no command and no url")
    args = entry.get("args") or []
    if not isinstance(args, list):
        raise Unreadable("args is not a list")
    server.command = [_value(source, server, command), *(_value(source, server, str(a)) for a in args)]
    server.env = {str(k): _value(source, server, str(v)) for k, v in _mapping(entry, "env").items()}
    return server


def _mapping(entry: dict[str, Any], key: str) -> dict[str, Any]:
    value = entry.get(key) or {}
    if not isinstance(value, dict):
        raise Unreadable(f"{key} is not an object")
    return value


def _value(source: ClientFile, server: FoundServer, text: str) -> str:
    """VS Code's variables as Watchgate's: ``${env:X}`` is ``${X}``; ``${input:id}`` (a value
    VS Code prompts for) becomes ``${ID}``, to be set in the gateway's environment; a predefined
    variable with one meaning anywhere (``${userHome}``, ``${pathSeparator}``, and a workspace
    file's ``${workspaceFolder}``) is resolved, any other is `Unreadable` (only VS Code knows it).
    Other clients' values are taken as they are."""
    if not source.vscode:
        return text

    def variable(match: re.Match[str]) -> str:
        name = match.group(1)
        kind, colon, rest = name.partition(":")
        if colon and kind == "env" and _NAME.fullmatch(rest):
            return "${" + rest + "}"
        if colon and kind == "input":
            reference = re.sub(r"[^A-Za-z0-9_]", "_", rest).upper()
            reference = reference if _NAME.fullmatch(reference) else f"INPUT_{reference}"
            server.inputs.append(reference)
            return "${" + reference + "}"
        resolved = _predefined(source, name)
        if resolved is not None:
            return resolved
        if colon or name in _VSCODE_PREDEFINED:
            raise Unreadable(f"uses VS Code's ${{{name}}}, which has no value outside VS Code")
        return match.group(0)

    return _VSCODE_VARIABLE.sub(variable, text)


def _predefined(source: ClientFile, name: str) -> str | None:
    if name == "userHome":
        return str(Path.home())
    if name in ("pathSeparator", "/"):
        return os.sep
    if source.project is not None and name == "workspaceFolder":
        return str(source.project.resolve())
    if source.project is not None and name == "workspaceFolderBasename":
        return source.project.resolve().name
    return None
