"""Search mode (``discovery: {mode: search}``): the gateway's find_tools and call_tool in place of
every tool, and a tools/list query in either mode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
import yaml

from tests.audit.helpers import Clock
from tests.gateway.fakes import FakeServer, FakeSession, echo, running_daemon, running_gateway, text
from tests.plugins.helpers import RichServer
from watchgate.audit import AuditActor, resolved_audit_config
from watchgate.config import GatewayConfig, parse_config

GITHUB = {
    "search_issues": {"description": "Search issues and pull requests in a repository."},
    "create_pull_request": {"description": "Open a pull request from a branch."},
    "delete_repository": {"description": "Delete a repository for good."},
    "getFileContents": {
        "description": "Read a file of a repository.",
        "inputSchema": {
            "type": "object",
            "properties": {"path": {"type": "string", "description": "the file"}},
        },
    },
}
FILES = {
    "read_text_file": {"description": "Read a text file from disk."},
    "write_file": {"description": "Create or overwrite a file on disk."},
    "list_directory": {"description": "List the entries of a folder."},
}


def _config(**document: Any) -> GatewayConfig:
    upstreams = [
        {
            "name": "github",
            "command": ["fake"],
            "tools": {"deny": ["delete_*"], "rename": {"getFileContents": "get_file"}},
        },
        {"name": "fs", "command": ["fake"]},
    ]
    base: dict[str, Any] = {
        "proxy": {"startup_wait": 15, "upstreams": upstreams},
        "discovery": {"mode": "search"},
    }
    return parse_config(yaml.safe_dump({**base, **document}))


def _servers() -> tuple[RichServer, RichServer]:
    return (
        RichServer("github", tools={name: echo for name in GITHUB}, definitions=GITHUB),
        RichServer("fs", tools={name: echo for name in FILES}, definitions=FILES),
    )


async def _found(client: Any, query: str, **more: Any) -> list[str]:
    result = await client.result("tools/call", {"name": "find_tools", "arguments": {"query": query, **more}})
    names = [t["name"] for t in result["structuredContent"]["tools"]]
    assert not names or json.loads(result["content"][0]["text"]) == result["structuredContent"]["tools"]
    return names


async def test_search_mode_lists_two_tools_finds_and_calls(autojump_clock: trio.testing.MockClock) -> None:
    github, fs = _servers()
    async with running_gateway(
        _config(discovery={"mode": "search", "always": ["fs__list_*"]}), github, fs
    ) as (
        _,
        client,
    ):
        await client.initialize()
        listed = [t["name"] for t in (await client.result("tools/list"))["tools"]]
        assert listed == ["find_tools", "call_tool", "fs__list_directory"]
        assert (await _found(client, "open a pull request"))[0] == "github__create_pull_request"
        assert (await _found(client, "read a text file", limit=2)) == [
            "fs__read_text_file",
            "github__get_file",
        ]
        assert "github__delete_repository" not in await _found(
            client, "delete repository"
        )  # hidden: never found
        assert "getFileContents" not in json.dumps(
            await _found(client, "file contents")
        )  # found by its public name
        called = await client.result(
            "tools/call",
            {"name": "call_tool", "arguments": {"name": "github__get_file", "arguments": {"text": "hi"}}},
        )
        assert called == text("hi")
        assert github.session.requests("tools/call")[-1]["params"] == {
            "name": "getFileContents",
            "arguments": {"text": "hi"},
        }
        refused = await client.request(
            "tools/call",
            {"name": "call_tool", "arguments": {"name": "github__delete_repository", "arguments": {}}},
        )
        assert refused["error"]["code"] == -32602  # as a direct tools/call of it would be
        assert len(github.session.requests("tools/call")) == 1


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"query": ""}, "query must name the task"),
        ({"query": "   !!! "}, "query must name the task"),
        ({"query": "file", "limit": 0}, "limit must be"),
        ({"query": "file", "limit": "3"}, "limit must be"),
        ({}, "find_tools needs a query"),
    ],
)
async def test_bad_searches_are_clear_errors(
    arguments: dict[str, Any], words: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with running_gateway(_config(), *_servers()) as (_, client):
        await client.initialize()
        error = (await client.request("tools/call", {"name": "find_tools", "arguments": arguments}))["error"]
        assert error["code"] == -32602 and words in error["message"]


async def test_big_queries_and_limits_are_cut_not_refused(autojump_clock: trio.testing.MockClock) -> None:
    async with running_gateway(_config(), *_servers()) as (_, client):
        await client.initialize()
        assert len(await _found(client, "file " * 2000)) >= 1  # 10 KB: its first words count
        assert len(await _found(client, "file", limit=10_000)) == 3  # every match, however many asked
        for bad in (
            {"name": "call_tool", "arguments": {"name": "nope__x"}},
            {"name": "call_tool", "arguments": {"name": 3}},
        ):
            assert (await client.request("tools/call", bad))["error"]["code"] == -32602
        not_object = {"name": "call_tool", "arguments": {"name": "fs__write_file", "arguments": [1]}}
        assert "must be an object" in (await client.request("tools/call", not_object))["error"]["message"]


async def test_a_query_on_tools_list_works_in_list_mode_too(autojump_clock: trio.testing.MockClock) -> None:
    async with running_gateway(_config(discovery={"mode": "list"}), *_servers()) as (_, client):
        await client.initialize()
        assert len((await client.result("tools/list"))["tools"]) == 6  # every tool it may see
        found = (await client.result("tools/list", {"query": "pull request", "limit": 1}))["tools"]
        assert [t["name"] for t in found] == ["github__create_pull_request"] and "inputSchema" in found[0]
        # find_tools is no tool in list mode: a call to it is a call to an unknown tool
        assert (await client.request("tools/call", {"name": "find_tools", "arguments": {"query": "x"}}))[
            "error"
        ]["code"] == -32602


async def test_a_profile_chooses_search_and_finds_only_what_it_may_see(
    autojump_clock: trio.testing.MockClock,
) -> None:
    profiles = {"narrow": {"servers": ["fs"], "discovery": {"mode": "search"}}}
    async with running_daemon(_config(discovery={"mode": "list"}, profiles=profiles), *_servers()) as (
        _,
        attach,
    ):
        narrow, everyone = await attach(profile="narrow"), await attach()
        await narrow.initialize()
        await everyone.initialize()
        assert [t["name"] for t in (await narrow.result("tools/list"))["tools"]] == [
            "find_tools",
            "call_tool",
        ]
        assert len((await everyone.result("tools/list"))["tools"]) == 6
        assert all(name.startswith("fs__") for name in await _found(narrow, "file pull request repository"))
        refused = await narrow.request(
            "tools/call", {"name": "call_tool", "arguments": {"name": "github__search_issues"}}
        )
        assert refused["error"]["code"] == -32602


async def test_a_servers_new_tools_are_found_after_its_list_changed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    github, fs = _servers()
    async with running_gateway(_config(), github, fs) as (gateway, client):
        await client.initialize()
        assert await _found(client, "calendar meeting") == []
        fs.tools["book_meeting"] = echo
        fs.definitions["book_meeting"] = {"description": "Book a meeting in the calendar."}
        await fs.session.notify("notifications/tools/list_changed")
        await client.wait_for(lambda: gateway.router.tool_count("fs") == 4)
        assert await _found(client, "calendar meeting") == ["fs__book_meeting"]


async def test_progress_and_cancellation_pass_through_call_tool(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """call_tool is the tools/call it names in every respect: its progress token reaches the
    server (mapped, as any call's), and cancelling it cancels the call upstream."""

    async def slow(session: FakeSession, args: dict[str, Any]) -> Any:
        await trio.sleep(100)
        return text("done")

    slowpoke = FakeServer("slow", tools={"work": slow})
    async with running_gateway(_config_of("slow", "b"), slowpoke, FakeServer("b")) as (_, client):
        await client.initialize()
        params = {
            "name": "call_tool",
            "arguments": {"name": "slow__work", "arguments": {}},
            "_meta": {"progressToken": "p1"},
        }
        request_id = await client.start("tools/call", params)
        await client.wait_for(lambda: bool(slowpoke.sessions and slowpoke.session.requests("tools/call")))
        upstream = slowpoke.session.requests("tools/call")[-1]
        assert upstream["params"]["name"] == "work" and "progressToken" in upstream["params"]["_meta"]
        await client.notify("notifications/cancelled", {"requestId": request_id})
        await client.wait_for(lambda: bool(slowpoke.session.requests("notifications/cancelled")))


def _config_of(*names: str) -> GatewayConfig:
    upstreams = [{"name": name, "command": ["fake"]} for name in names]
    return parse_config(yaml.safe_dump({"proxy": {"upstreams": upstreams}, "discovery": {"mode": "search"}}))


async def test_a_tool_the_policy_denies_is_never_found_and_call_tool_is_audited_as_the_tool(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    log = tmp_path / "audit.jsonl"
    config = _config(
        plugins=[{"name": "tool_access", "config": {"tools": {"deny": ["write_file"]}}}],
        audit={"path": str(log)},
    )
    audit = AuditActor(resolved_audit_config(config), threaded=False, wall_clock=Clock())
    async with running_gateway(config, *_servers(), audit=audit) as (_, client):
        await client.initialize()
        assert "fs__write_file" not in await _found(client, "write a file")
        denied = await client.request(
            "tools/call", {"name": "call_tool", "arguments": {"name": "fs__write_file", "arguments": {}}}
        )
        assert denied["error"]["code"] == -32010  # the policy's refusal, as for a direct call
        await client.result("tools/call", {"name": "call_tool", "arguments": {"name": "fs__list_directory"}})
    records = [json.loads(line) for line in log.read_text().splitlines()]
    answered = [(r["public_name"], r["tool"]) for r in records if r["event"] in ("response", "call")]
    assert answered == [("fs__write_file", "write_file"), ("fs__list_directory", "list_directory")]
