"""Reading each client's file into the servers it runs."""

from __future__ import annotations

from pathlib import Path

from tests.importing.conftest import Machine
from watchgate.importing.sources import ClientFile, client_files, given_file, read_client_file


def _all(machine: Machine) -> dict[str, list[tuple[str, str, object]]]:
    found: dict[str, list[tuple[str, str, object]]] = {}
    for source in client_files(machine.home, machine.project):
        servers, problems = read_client_file(source)
        assert problems == []
        for server in servers:
            found.setdefault(server.client, []).append(
                (server.name, server.transport, server.url or server.command)
            )
    return found


def test_every_client_is_found_in_its_own_place_and_shape(every_client: Machine) -> None:
    found = _all(every_client)
    assert found["Claude Desktop"] == [
        ("github", "stdio", ["npx", "-y", "@modelcontextprotocol/server-github"]),
        (
            "filesystem",
            "stdio",
            ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/home/me/projects"],
        ),
    ]
    assert found["Claude Code"] == [("sentry", "http", "https://mcp.sentry.dev/mcp")]
    assert found["Claude Code (project)"] == [("time server", "stdio", ["uvx", "mcp-server-time"])]
    assert found["Cursor"] == [("GitHub", "stdio", ["npx", "-y", "@modelcontextprotocol/server-github"])]
    assert found["VS Code (project)"][0] == ("linear", "sse", "https://mcp.linear.app/sse")
    assert found["Windsurf"] == [("context7", "http", "https://mcp.context7.com/mcp")]


def test_vscode_variables_become_watchgate_references(every_client: Machine) -> None:
    source = ClientFile("VS Code (project)", every_client.project / ".vscode" / "mcp.json", key="servers")
    (linear, memory), _ = read_client_file(source)
    assert linear.headers == {"Authorization": "Bearer ${API_KEY}"} and linear.inputs == ["API_KEY"]
    assert memory.env == {"MEMORY_FILE_PATH": "${HOME}/memory.json"}


def test_what_cannot_be_read_is_reported_not_guessed(machine: Machine) -> None:
    broken = machine.write(
        "broken.json", {"mcpServers": {"a": {"args": ["x"]}, "b": {"type": "http"}, "c": 3}}
    )
    servers, problems = read_client_file(given_file(broken))
    assert servers == []
    assert [p.split(": ", 1)[1] for p in problems] == [
        "server 'a': no command and no url",
        "server 'b': type http without a url",
        "server 'c': not an object",
    ]
    (machine.home / "bad.json").write_text("{ not json")
    _, problems = read_client_file(ClientFile("x", machine.home / "bad.json"))
    assert "not valid JSON (line 1" in problems[0]
    assert read_client_file(ClientFile("x", Path(machine.home / "missing.json"))) == ([], [])
