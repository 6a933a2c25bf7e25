"""Reading each client's file into the servers it runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.importing.conftest import Machine
from watchgate.importing.sources import ClientFile, client_files, given_file, read_client_file


def _all(machine: Machine) -> dict[str, list[tuple[str, str, object]]]:
    found: dict[str, list[tuple[str, str, object]]] = {}
    sources, _ = client_files(machine.home, machine.project)
    for source in sources:
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
    (machine.home / "deep.json").write_text('{"mcpServers": ' + "[" * 100_000 + "]" * 100_000 + "}")
    _, problems = read_client_file(ClientFile("x", machine.home / "deep.json"))
    assert problems == [f"{machine.home / 'deep.json'}: nested too deeply to be a client's config"]
    assert read_client_file(ClientFile("x", Path(machine.home / "missing.json"))) == ([], [])


def test_vscode_files_with_comments_and_trailing_commas_are_read(machine: Machine) -> None:
    path = machine.project / ".vscode" / "mcp.json"
    path.parent.mkdir()
    path.write_text(
        '{\n  // the servers\n  "servers": {\n    "time": {"command": "uvx", "args": ["mcp-server-time",],},\n'
        '    /* off: "x": {} */\n  },\n}\n'
    )
    (server,), problems = read_client_file(ClientFile("VS Code (project)", path, key="servers"))
    assert (server.command, problems) == (["uvx", "mcp-server-time"], [])


def test_vscode_predefined_variables_resolve_where_they_mean_one_thing(machine: Machine) -> None:
    entry = {"command": "node", "args": ["${userHome}/s.js", "${workspaceFolder}${pathSeparator}x"]}
    machine.write(
        ".vscode/mcp.json",
        {"servers": {"a": entry, "b": {"command": "x", "args": ["${file}"]}}},
        base=machine.project,
    )
    machine.write(
        ".config/Code/User/mcp.json", {"servers": {"c": {"command": "x", "args": ["${workspaceFolder}"]}}}
    )
    sources, _ = client_files(machine.home, machine.project)
    project = next(s for s in sources if s.client == "VS Code (project)")
    (a,), problems = read_client_file(project)
    assert a.command == ["node", f"{machine.home}/s.js", f"{machine.project.resolve()}/x"]
    assert [p.split(": ", 1)[1] for p in problems] == [
        "server 'b': uses VS Code's ${file}, which has no value outside VS Code"
    ]
    user = next(s for s in sources if s.client == "VS Code")
    _, problems = read_client_file(user)  # the user's file belongs to no one folder
    assert problems[0].endswith("uses VS Code's ${workspaceFolder}, which has no value outside VS Code")


def test_claude_codes_local_scope_is_read_for_this_folder_and_the_others_named(machine: Machine) -> None:
    here = str(machine.project.resolve())
    machine.write(
        ".claude.json",
        {
            "mcpServers": {},
            "projects": {
                here: {"mcpServers": {"db": {"command": "pg-mcp"}}, "allowedTools": []},
                "/home/me/other": {"mcpServers": {"x": {"command": "x"}}},
                "/home/me/empty": {"mcpServers": {}},
            },
        },
    )
    sources, notes = client_files(machine.home, machine.project)
    local = next(s for s in sources if s.client == "Claude Code (local)")
    (db,), _ = read_client_file(local)
    assert (db.name, db.command, db.project) == ("db", ["pg-mcp"], machine.project)
    assert notes == [
        "Claude Code also has servers for 1 other folder(s), imported when you run "
        "`watchgate import` there: /home/me/other"
    ]


def test_each_file_is_read_once_however_many_paths_lead_to_it(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine.write(".cursor/mcp.json", {"mcpServers": {"a": {"command": "a"}}})
    monkeypatch.chdir(machine.home)  # the project folder is $HOME: Cursor's user and project file are one
    sources, _ = client_files(machine.home, machine.home)
    assert [s.client for s in sources if s.path.name == "mcp.json" and ".cursor" in str(s.path)] == ["Cursor"]
