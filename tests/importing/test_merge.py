"""Planning the upstreams and writing them into supervisor.yaml."""

from __future__ import annotations

from pathlib import Path

import yaml

from watchgate.config import parse_config
from watchgate.importing.merge import merged_text, plan
from watchgate.importing.sources import FoundServer

CONFIG = """\
# my gateway
proxy:
  startup_wait: 5
  upstreams:
    - name: fs   # the one I use most
      command: [npx, -y, "@modelcontextprotocol/server-filesystem", /home/me/projects]
    # more below
audit:
  enabled: false
"""


def stdio(name: str, *command: str, client: str = "Cursor", **env: str) -> FoundServer:
    return FoundServer(client, Path("/x"), name, "stdio", command=list(command), env=dict(env))


def test_duplicates_merge_names_are_made_valid_and_present_ones_are_skipped() -> None:
    found = [
        stdio("github", "npx", "server-github", GITHUB_TOKEN="ghp_abc", client="Claude Desktop"),
        stdio("GitHub", "npx", "server-github", GITHUB_TOKEN="ghp_abc", client="Cursor"),
        stdio("filesystem", "npx", "-y", "@modelcontextprotocol/server-filesystem", "/home/me/projects"),
        stdio("time server", "uvx", "mcp-server-time"),
        stdio("2fa_tool.v2", "x"),
        stdio("fs", "other"),
        stdio("self", "/usr/bin/watchgate", "attach"),
    ]
    result = plan(found, CONFIG, {})
    assert [(p.name, len(p.found)) for p in result.new] == [
        ("github", 2),
        ("time-server", 1),
        ("mcp-2fa-tool-v2", 1),
        ("fs-2", 1),  # "fs" is taken by a different server
    ]
    assert result.new[0].secrets == ["GITHUB_TOKEN"]
    assert [(f.name, name) for f, name in result.present] == [("filesystem", "fs")]
    assert [f.name for f, _ in result.skipped] == ["self"]


def test_values_are_written_as_given_never_as_this_shells_variables() -> None:
    """A daemon started by an MCP client has only the client's little environment: a reference
    to this shell's GITHUB_TOKEN would leave the server without it."""
    found = [stdio("gh", "npx", "server-github", GITHUB_TOKEN="ghp_abc", DEBUG="1")]
    (planned,) = plan(found, None, {"HOME": "/home/me"}).new
    assert planned.entry["env"] == {"GITHUB_TOKEN": "ghp_abc", "DEBUG": "1"}
    assert planned.secrets == ["GITHUB_TOKEN"]


def test_a_server_needing_a_variable_a_client_does_not_pass_stays_in_its_client() -> None:
    vscode = FoundServer("VS Code", Path("/v"), "linear", "http", url="https://l/mcp", inputs=["LINEAR_KEY"])
    vscode.headers = {"Authorization": "Bearer ${LINEAR_KEY}"}
    found = [
        vscode,
        stdio("mem", "npx", "server-memory", FILE="${HOME}/m.json"),
        stdio("x", "x", T="$${LIT}"),
    ]
    result = plan(found, None, {"HOME": "/home/me"})
    assert [p.name for p in result.new] == ["mem", "x"]  # $HOME comes with every client; $${…} is literal
    ((server, why),) = result.held
    assert server is vscode and why.startswith("needs ${LINEAR_KEY} (VS Code asks you for it)")


def test_line_breaks_only_yaml_knows_survive_the_merge() -> None:
    odd = ["a\u2028b", "x\x85y", "c\u2029d", "e\rf", "café"]
    entries = [p.entry for p in plan([stdio("odd", "prog", *odd)], CONFIG, {}).new]
    appended_to, _ = merged_text(CONFIG, entries)
    assert list(parse_config(appended_to).proxy.upstreams[1].command) == ["prog", *odd]
    assert list(parse_config(merged_text(None, entries)[0]).proxy.upstreams[0].command) == ["prog", *odd]
    strange = CONFIG.replace("[npx, -y,", '[npx, "-\u2028y",')  # YAML sees two lines where Python sees one
    text, appended = merged_text(strange, entries)
    assert not appended and [u.name for u in parse_config(text).proxy.upstreams] == ["fs", "odd"]


def test_appending_keeps_comments_and_layout_and_twice_changes_nothing() -> None:
    found = [
        stdio("time", "uvx", "mcp-server-time"),
        FoundServer("Windsurf", Path("/w"), "c7", "http", url="https://c7/mcp"),
    ]
    entries = [p.entry for p in plan(found, CONFIG, {}).new]
    text, appended = merged_text(CONFIG, entries)
    assert appended
    assert text.startswith(CONFIG.split("    # more below")[0])  # everything before, untouched
    assert "# the one I use most" in text and "# more below" in text
    assert text.index("name: time") < text.index("# more below") < text.index("audit:")
    config = parse_config(text)
    assert [u.name for u in config.proxy.upstreams] == ["fs", "time", "c7"]
    assert plan(found, text, {}).new == []  # imported already: nothing to add


def test_a_new_file_and_other_shapes_are_written_from_data() -> None:
    entries = [{"name": "time", "command": ["uvx", "mcp-server-time"]}]
    text, appended = merged_text(None, entries)
    assert appended and yaml.safe_load(text) == {"proxy": {"upstreams": entries}}
    single = "proxy:\n  upstream:\n    command: [uvx, mcp-server-fetch]\n"
    text, appended = merged_text(single, entries)
    assert not appended
    assert [u["name"] for u in yaml.safe_load(text)["proxy"]["upstreams"]] == ["default", "time"]
    flow = "proxy: {upstreams: [{name: a, command: [x]}]}\n"
    text, appended = merged_text(flow, entries)
    assert not appended and [u.name for u in parse_config(text).proxy.upstreams] == ["a", "time"]
