"""Sample client config files, each in the shape its client documents, in a fake home."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

GITHUB = {
    "command": "npx",
    "args": ["-y", "@modelcontextprotocol/server-github"],
    "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_example0123456789"},
}
FILESYSTEM = {
    "command": "npx",
    "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/me/projects"],
}


@dataclass
class Machine:
    home: Path
    project: Path

    def write(self, relative: str, document: dict[str, Any], *, base: Path | None = None) -> Path:
        path = (base or self.home) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2))
        return path


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Machine:
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("WATCHGATE_CONFIG", raising=False)
    monkeypatch.chdir(project)
    return Machine(home, project)


@pytest.fixture
def every_client(machine: Machine) -> Machine:
    """Claude Desktop (Linux path), Claude Code (user and project), Cursor, VS Code, Windsurf."""
    machine.write(
        ".config/Claude/claude_desktop_config.json",
        {"mcpServers": {"github": GITHUB, "filesystem": FILESYSTEM}},
    )
    machine.write(
        ".claude.json",  # Claude Code keeps much more in this file: it must survive a rewrite
        {
            "numStartups": 12,
            "projects": {"/home/me/x": {"allowedTools": []}},
            "mcpServers": {"sentry": {"type": "http", "url": "https://mcp.sentry.dev/mcp"}},
        },
    )
    machine.write(
        ".mcp.json",
        {"mcpServers": {"time server": {"type": "stdio", "command": "uvx", "args": ["mcp-server-time"]}}},
        base=machine.project,
    )
    machine.write(".cursor/mcp.json", {"mcpServers": {"GitHub": GITHUB}})
    machine.write(
        ".vscode/mcp.json",
        {
            "inputs": [{"type": "promptString", "id": "api-key", "password": True}],
            "servers": {
                "linear": {
                    "type": "sse",
                    "url": "https://mcp.linear.app/sse",
                    "headers": {"Authorization": "Bearer ${input:api-key}"},
                },
                "memory": {"type": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"],
                           "env": {"MEMORY_FILE_PATH": "${env:HOME}/memory.json"}},
            },
        },
        base=machine.project,
    )  # fmt: skip
    machine.write(
        ".codeium/windsurf/mcp_config.json",
        {"mcpServers": {"context7": {"serverUrl": "https://mcp.context7.com/mcp"}}},
    )
    return machine
