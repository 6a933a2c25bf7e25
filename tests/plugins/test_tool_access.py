"""``tool_access``: allow and deny globs per server for tools, prompts and resources."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.gateway.fakes import FakeServer, echo, running_gateway
from tests.plugins.helpers import build, config_with, listing, request
from watchgate.plugins.api import Allow, Deny
from watchgate.plugins.names import normalize_uri, plain, skeleton


def verdict(plugin: Any, method: str, name: str, params: Any = None) -> Any:
    message, ctx = request(method, params if params is not None else {"name": name}, name=name)
    return plugin.check_request(message, ctx)


def test_allow_list_admits_only_its_globs() -> None:
    plugin = build("tool_access", {"tools": {"allow": ["read_*", "list_directory"]}})
    assert isinstance(verdict(plugin, "tools/call", "read_text_file"), Allow)
    assert isinstance(verdict(plugin, "tools/call", "list_directory"), Allow)
    denied = verdict(plugin, "tools/call", "write_file")
    assert isinstance(denied, Deny) and denied.reason == "tool 'write_file' is not allowed on this server"


def test_deny_wins_over_allow() -> None:
    plugin = build("tool_access", {"tools": {"allow": ["*"], "deny": ["*delete*"]}})
    denied = verdict(plugin, "tools/call", "safe_delete")
    assert (
        isinstance(denied, Deny)
        and denied.reason == "tool 'safe_delete' is denied on this server (rule '*delete*')"
    )
    assert isinstance(verdict(plugin, "tools/call", "read"), Allow)


def test_prompts_resources_and_completions_have_their_own_rules() -> None:
    plugin = build(
        "tool_access",
        {"prompts": {"deny": ["admin-*"]}, "resources": {"allow": ["file:///srv/*"], "deny": ["*.key"]}},
    )
    assert isinstance(verdict(plugin, "prompts/get", "admin-reset"), Deny)
    assert isinstance(verdict(plugin, "prompts/get", "greet"), Allow)
    assert isinstance(verdict(plugin, "resources/read", "file:///srv/a.txt"), Allow)
    assert isinstance(verdict(plugin, "resources/read", "file:///etc/passwd"), Deny)
    assert isinstance(verdict(plugin, "resources/subscribe", "file:///srv/id.key"), Deny)
    assert isinstance(verdict(plugin, "resources/unsubscribe", "file:///etc/passwd"), Allow)
    prompt_ref = {"ref": {"type": "ref/prompt", "name": "admin-x"}}
    resource_ref = {"ref": {"type": "ref/resource", "uri": "file:///etc/x"}}
    assert isinstance(verdict(plugin, "completion/complete", "admin-x", prompt_ref), Deny)
    assert isinstance(verdict(plugin, "completion/complete", "file:///etc/x", resource_ref), Deny)
    assert isinstance(verdict(plugin, "completion/complete", "x", {"ref": "odd"}), Allow)
    assert isinstance(verdict(plugin, "tools/call", "anything"), Allow)


def test_lists_hide_what_calls_refuse() -> None:
    plugin = build(
        "tool_access",
        {"tools": {"deny": ["rm"]}, "prompts": {"allow": ["ok"]}, "resources": {"deny": ["secret://*"]}},
    )
    tools = [{"name": "ls"}, {"name": "rm"}, {"name": 3}]
    assert plugin.filter_list("tools", tools, listing()) == [{"name": "ls"}, {"name": 3}]
    assert plugin.filter_list("prompts", [{"name": "ok"}, {"name": "no"}], listing()) == [{"name": "ok"}]
    resources = [{"uri": "secret://a"}, {"uri": "file:///b"}]
    assert plugin.filter_list("resources", resources, listing()) == [{"uri": "file:///b"}]
    templates = [{"uriTemplate": "secret://{id}"}, {"uriTemplate": "file:///{path}"}]
    assert plugin.filter_list("resourceTemplates", templates, listing()) == [
        {"uriTemplate": "file:///{path}"}
    ]
    unchanged = [{"name": "ls"}]
    assert plugin.filter_list("tools", unchanged, listing()) is unchanged


def test_without_rules_nothing_is_touched() -> None:
    plugin = build("tool_access", {"strict_names": False})
    items = [{"name": "anything at all"}]
    assert plugin.filter_list("tools", items, listing()) is items
    assert plugin.filter_list("resourceTemplates", items, listing()) is items
    assert isinstance(verdict(plugin, "tools/call", "any name"), Allow)


def test_decisions_are_cached_and_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import watchgate.plugins.tool_access as module

    monkeypatch.setattr(module, "_CACHE_SIZE", 2)
    plugin = build("tool_access", {"tools": {"deny": ["x*"]}})
    for name in ("a", "b", "c", "xa", "a"):
        verdict(plugin, "tools/call", name)
    assert isinstance(verdict(plugin, "tools/call", "xa"), Deny)


def test_name_helpers() -> None:
    assert skeleton("\uff32\uff4d") == "rm" and skeleton("r\u200bm") == "rm" and skeleton("r\u043c") == "rm"
    assert plain("read_file") and not plain("read file") and not plain("") and not plain("réad")
    assert normalize_uri("file:///srv/a/%2e%2e/%2e%2e/etc/passwd") == "file:///etc/passwd"
    assert normalize_uri("file:///srv/dir/") == "file:///srv/dir/"
    assert normalize_uri("file:////etc//x") == "file:///etc/x"
    assert normalize_uri("mailto:someone") == "mailto:someone"
    assert normalize_uri("demo://host") == "demo://host"
    assert normalize_uri("http://[bad") == "http://[bad"


async def test_hidden_tools_vanish_and_guessed_calls_are_refused_per_server(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fs = FakeServer("fs", tools={"read": echo, "write": echo})
    git = FakeServer("git", tools={"write": echo, "push": echo})
    config = config_with(
        "fs",
        "git",
        plugins=[{"name": "tool_access", "config": {"tools": {"deny": ["write"]}}}],
        per_server={"git": [{"name": "tool_access", "config": {"tools": {"allow": ["write"]}}}]},
    )
    async with running_gateway(config, fs, git) as (_, client):
        await client.initialize()
        names = [t["name"] for t in (await client.result("tools/list"))["tools"]]
        # git's override replaced the whole "tools" key: its allow list, and no deny
        assert names == ["fs__read", "git__write"]
        error = (await client.request("tools/call", {"name": "fs__write"}))["error"]
        assert error["code"] == -32010
        assert error["data"] == {
            "plugin": "tool_access",
            "reason": "tool 'write' is denied on this server (rule 'write')",
        }
        assert (await client.request("tools/call", {"name": "git__push"}))["error"]["code"] == -32010
        assert "result" in await client.request("tools/call", {"name": "git__write"})
        assert fs.session.requests("tools/call") == []


async def test_an_override_can_switch_the_plugin_off_for_one_server(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fs = FakeServer("fs", tools={"rm": echo})
    scratch = FakeServer("scratch", tools={"rm": echo})
    config = config_with(
        "fs",
        "scratch",
        plugins=[{"name": "tool_access", "config": {"tools": {"deny": ["rm"]}}}],
        per_server={"scratch": [{"name": "tool_access", "enabled": False}]},
    )
    async with running_gateway(config, fs, scratch) as (_, client):
        await client.initialize()
        assert [t["name"] for t in (await client.result("tools/list"))["tools"]] == ["scratch__rm"]
        assert "result" in await client.request("tools/call", {"name": "scratch__rm"})


async def test_audit_only_lists_and_lets_through(autojump_clock: trio.testing.MockClock) -> None:
    fs = FakeServer("fs", tools={"rm": echo})
    config = config_with(
        "fs", plugins=[{"name": "tool_access", "mode": "audit_only", "config": {"tools": {"deny": ["rm"]}}}]
    )
    async with running_gateway(config, fs) as (_, client):
        await client.initialize()
        assert [t["name"] for t in (await client.result("tools/list"))["tools"]] == ["rm"]
        assert "result" in await client.request("tools/call", {"name": "rm"})


async def test_rules_for_callers_name_users_and_groups(autojump_clock: trio.testing.MockClock) -> None:
    """``callers``: the principal's first matching entry adds its rules to the server's own."""
    import yaml

    from tests.gateway.fakes import running_daemon
    from watchgate.config import parse_config
    from watchgate.protocol.identity import Principal

    rules = {
        "tools": {"deny": ["drop_*"]},
        "callers": [
            {"match": {"claims": {"tenant": "acme"}}, "tools": {"deny": ["read_*"]}},
            {"match": {"groups": ["interns"]}, "tools": {"allow": ["read_*"]}},
            {"match": {"user": "ana"}, "tools": {"deny": ["write_*"]}},
        ],
    }
    document = {
        "proxy": {"upstreams": [{"name": "fs", "command": ["fake"]}]},
        "plugins": [{"name": "tool_access", "config": rules}],
    }
    server = FakeServer("fs", tools={"read_file": echo, "write_file": echo, "drop_table": echo})
    async with running_daemon(parse_config(yaml.safe_dump(document)), server) as (gateway, attach):
        ana = await attach(principal=Principal(name="ana", proven_by="token"))
        ivy = await attach(principal=Principal(name="ivy", groups=("interns",), proven_by="token"))
        bob = await attach(principal=Principal(name="bob", proven_by="token"))
        zed = await attach(
            principal=Principal(name="zed", proven_by="oauth", claims=(("tenant", ("acme",)),))
        )
        for client in (ana, ivy, bob, zed):
            await client.initialize()
        await ana.wait_for(lambda: gateway.router.tool_count("fs") == 2)

        async def outcome(client: Any, tool: str) -> str:
            answer = await client.request("tools/call", {"name": tool, "arguments": {"text": "x"}})
            return "ok" if "result" in answer else answer["error"]["message"]

        assert await outcome(bob, "write_file") == "ok"
        assert "for 'ana'" in await outcome(ana, "write_file")
        assert await outcome(ana, "read_file") == "ok"
        assert "not allowed on this server for 'ivy'" in await outcome(ivy, "write_file")
        assert await outcome(ivy, "read_file") == "ok"
        assert "denied on this server" in await outcome(bob, "drop_table")  # everyone's rule first
        assert "for 'zed'" in await outcome(zed, "read_file")  # a claim of its token names it
