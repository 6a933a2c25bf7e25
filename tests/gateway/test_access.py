"""``access:``: what each caller may do, by who it is (its principal), first rule that matches;
a profile the client picks only narrows what its rule gives; rate limits per caller and tool."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing
import yaml

from tests.gateway.fakes import FakeServer, echo, running_daemon
from watchgate.config import GatewayConfig, parse_config
from watchgate.protocol.identity import Principal

ANA = Principal(name="ana", groups=("dev",), proven_by="token")
BOB = Principal(name="bob", groups=("ops",), proven_by="token")
EVE = Principal(name="eve", proven_by="token")


def _config(**more: Any) -> GatewayConfig:
    upstreams = [{"name": name, "command": ["fake"]} for name in ("fs", "git")]
    document: dict[str, Any] = {
        "proxy": {"startup_wait": 15, "upstreams": upstreams},
        "profiles": {
            "readonly": {"tools": {"allow": ["*__read*", "*__list*"]}},
            "gitonly": {"servers": ["git"]},
        },
        "access": [
            {"match": {"groups": ["dev"]}, "tools": {"deny": ["git__push"]}, "rate": {"calls": 3, "per": 60}},
            {"match": {"user": "bob"}, "profile": "readonly", "tool_rate": {"calls": 1, "per": 10}},
        ],
        **more,
    }
    return parse_config(yaml.safe_dump(document))


def _servers() -> tuple[FakeServer, FakeServer]:
    return (
        FakeServer("fs", tools={"read_file": echo, "write_file": echo}),
        FakeServer("git", tools={"list_commits": echo, "push": echo}),
    )


async def _tools(client: Any) -> list[str]:
    return sorted(t["name"] for t in (await client.result("tools/list"))["tools"])


async def test_each_caller_sees_and_calls_what_its_rule_gives(autojump_clock: trio.testing.MockClock) -> None:
    async with running_daemon(_config(), *_servers()) as (gateway, attach):
        ana, bob, eve = await attach(principal=ANA), await attach(principal=BOB), await attach(principal=EVE)
        for client in (ana, bob, eve):
            await client.initialize()
        await ana.wait_for(lambda: gateway.router.tool_count("git") == 2)
        assert await _tools(ana) == ["fs__read_file", "fs__write_file", "git__list_commits"]
        assert await _tools(bob) == ["fs__read_file", "git__list_commits"]  # its rule's forced profile
        assert await _tools(eve) == []  # no rule matches: nothing
        assert (await ana.request("tools/call", {"name": "git__push"}))["error"]["code"] == -32602
        assert (await bob.request("tools/call", {"name": "fs__write_file"}))["error"]["code"] == -32602
        refused = (await eve.request("tools/call", {"name": "fs__read_file"}))["error"]
        assert refused["code"] == -32010 and "no access rule lets 'eve'" in refused["message"]


async def test_a_profile_the_client_picks_only_narrows_its_rule(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_daemon(_config(), *_servers()) as (gateway, attach):
        bob = await attach(principal=BOB, profile="gitonly")  # asks for git's everything
        await bob.initialize()
        await bob.wait_for(lambda: gateway.router.tool_count("git") == 2)
        assert await _tools(bob) == ["git__list_commits"]  # readonly AND gitonly, never more


async def test_rate_limits_refuse_and_free_up(autojump_clock: trio.testing.MockClock) -> None:
    async with running_daemon(_config(), *_servers()) as (_, attach):
        ana, bob = await attach(principal=ANA), await attach(principal=BOB)
        await ana.initialize()
        await bob.initialize()
        for _ in range(3):
            assert "result" in await ana.request("tools/call", {"name": "fs__read_file", "arguments": {}})
        limited = (await ana.request("tools/call", {"name": "fs__read_file", "arguments": {}}))["error"]
        assert limited["code"] == -32012 and "3 calls per 60 s for 'ana'" in limited["message"]
        assert limited["data"]["retryAfter"] > 0
        await trio.sleep(20)  # one call's worth of the bucket has come back
        assert "result" in await ana.request("tools/call", {"name": "fs__read_file", "arguments": {}})
        # bob: one call of each tool per 10 s
        assert "result" in await bob.request("tools/call", {"name": "fs__read_file", "arguments": {}})
        assert "result" in await bob.request("tools/call", {"name": "git__list_commits", "arguments": {}})
        again = (await bob.request("tools/call", {"name": "fs__read_file", "arguments": {}}))["error"]
        assert again["code"] == -32012 and "calls of 'fs__read_file'" in again["message"]


async def test_reloaded_rules_apply_at_once(autojump_clock: trio.testing.MockClock) -> None:
    async with running_daemon(_config(), *_servers()) as (gateway, attach):
        eve = await attach(principal=EVE)
        await eve.initialize()
        await eve.wait_for(lambda: gateway.router.tool_count("git") == 2)
        assert await _tools(eve) == []
        everyone = [{"match": {}, "servers": ["fs"]}]
        await gateway.reload(_config(access=everyone))
        assert await _tools(eve) == ["fs__read_file", "fs__write_file"]


async def test_rules_match_claims_of_the_token(autojump_clock: trio.testing.MockClock) -> None:
    acme = Principal(
        name="cid", proven_by="oauth", claims=(("tenant", ("acme",)), ("roles", ("viewer", "admin")))
    )
    other = Principal(name="dan", proven_by="oauth", claims=(("tenant", ("globex",)),))
    rules = [
        {"match": {"claims": {"tenant": "acme", "roles": ["admin", "owner"]}}, "servers": ["git"]},
        {"match": {"claims": {"tenant": "acme"}}, "servers": ["fs"]},
    ]
    async with running_daemon(_config(access=rules), *_servers()) as (gateway, attach):
        cid, dan = await attach(principal=acme), await attach(principal=other)
        for client in (cid, dan):
            await client.initialize()
        await cid.wait_for(lambda: gateway.router.tool_count("git") == 2)
        assert await _tools(cid) == ["git__list_commits", "git__push"]  # tenant and one of the roles
        assert await _tools(dan) == []  # another tenant: no rule


async def test_a_concurrency_limit_holds_calls_until_one_answers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    release = trio.Event()

    async def slow(session: Any, arguments: dict[str, Any]) -> dict[str, Any]:
        await release.wait()
        return {"content": []}

    rules = [{"match": {}, "concurrency": 2}]
    servers = (
        FakeServer("fs", tools={"slow": slow, "read_file": echo}),
        FakeServer("git", tools={"push": echo}),
    )
    async with running_daemon(_config(access=rules), *servers) as (gateway, attach):
        ana, bob = await attach(principal=ANA), await attach(principal=BOB)
        await ana.initialize()
        await bob.initialize()
        await ana.wait_for(lambda: gateway.router.tool_count("fs") == 2)
        first = await ana.start("tools/call", {"name": "fs__slow", "arguments": {}})
        second = await ana.start("tools/call", {"name": "fs__slow", "arguments": {}})
        await ana.wait_for(lambda: len(servers[0].session.requests("tools/call")) == 2)
        refused = (await ana.request("tools/call", {"name": "fs__read_file", "arguments": {}}))["error"]
        assert refused["code"] == -32012 and "2 calls at once for 'ana'" in refused["message"]
        assert "result" in await bob.request(
            "tools/call", {"name": "fs__read_file", "arguments": {}}
        )  # its own
        unknown = (await ana.request("tools/call", {"name": "fs__nope", "arguments": {}}))["error"]
        assert unknown["code"] == -32012  # still full: a refusal here held no slot
        release.set()
        assert "result" in await ana.response(first) and "result" in await ana.response(second)
        for _ in range(3):  # the two slots came back, and a call refused at the gateway gives its own back
            assert (await ana.request("tools/call", {"name": "fs__nope", "arguments": {}}))["error"][
                "code"
            ] == -32602
        assert "result" in await ana.request("tools/call", {"name": "fs__read_file", "arguments": {}})


async def test_resource_globs_hide_uris_from_lists_reads_and_subscriptions(
    autojump_clock: trio.testing.MockClock,
) -> None:
    servers = (
        FakeServer("fs", tools={"read_file": echo}, resources=["file:///pub/a.txt", "file:///secret/b.txt"]),
        FakeServer("git", tools={"push": echo}),
    )
    for server in servers:
        server.capabilities = {"tools": {}, "resources": {"subscribe": True}}
    rules = [{"match": {"user": "bob"}, "resources": {"deny": ["*/secret/*"]}}, {"match": {}}]
    async with running_daemon(_config(access=rules), *servers) as (gateway, attach):
        ana, bob = await attach(principal=ANA), await attach(principal=BOB)
        for client in (ana, bob):
            await client.initialize()
        await ana.wait_for(lambda: gateway.router.tool_count("fs") == 1)
        listed = (await bob.result("resources/list"))["resources"]
        assert [r["uri"] for r in listed] == ["fs+file:///pub/a.txt"]
        assert len((await ana.result("resources/list"))["resources"]) == 2
        secret = {"uri": "fs+file:///secret/b.txt"}
        assert (await bob.request("resources/read", secret))["error"]["code"] == -32602
        assert "result" in await bob.request("resources/read", {"uri": "fs+file:///pub/a.txt"})
        # ana subscribes first; bob's subscription to the same URI never reaches a server, and
        # was answered {} (and sent the updates) before the view was checked for every subscriber
        assert "result" in await ana.request("resources/subscribe", secret)
        refused = (await bob.request("resources/subscribe", secret))["error"]
        assert refused["code"] == -32602 and "secret" in refused["message"]
