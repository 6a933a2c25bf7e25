"""Tool calls held for a person's approval (``approvals:``): asked through the client that
declared elicitation, or listed for the console and the CLI; the server sees only the calls a
person approved."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import yaml

from tests.gateway.fakes import FakeServer, echo, running_daemon, running_gateway
from watchgate.config import parse_config
from watchgate.errors import ConfigError
from watchgate.protocol.identity import Principal

CALL = {"name": "echo", "arguments": {"text": "rm -rf /"}}
MODERN = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "modern", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
}


def approving(*rules: dict[str, Any], plugins: list[dict[str, Any]] | None = None) -> Any:
    upstream = {"name": "fx", "command": ["fake"]}
    document = {"proxy": {"startup_wait": 15, "upstreams": [upstream]}, "approvals": list(rules)}
    if plugins:
        document["plugins"] = plugins
    return parse_config(yaml.safe_dump(document))


def calls(server: FakeServer) -> int:
    return len(server.session.requests("tools/call")) if server.session is not None else 0


async def until_listed(gateway: Any, count: int) -> list[dict[str, Any]]:
    """The held calls once there are ``count`` of them (woken by each hold and decision)."""
    while len(gateway.approvals.listing()) != count:
        await gateway.approvals.changed.wait()
    return gateway.approvals.listing()  # type: ignore[no-any-return]


async def held_one(gateway: Any) -> dict[str, Any]:
    (held,) = await until_listed(gateway, 1)
    return held


async def test_a_held_call_runs_once_a_person_approves_it(autojump_clock: trio.testing.MockClock) -> None:
    server = FakeServer("fx", tools={"echo": echo})
    async with running_gateway(approving({"tools": ["echo"], "ask": "console"}), server) as (gateway, client):
        await client.initialize()
        request_id = await client.start("tools/call", CALL)
        held = await held_one(gateway)
        assert (held["server"], held["tool"], held["arguments"]) == ("fx", "echo", {"text": "rm -rf /"})
        await trio.sleep(30)
        assert calls(server) == 0  # the server has seen nothing of it
        assert gateway.approvals.decide(held["id"], approve=True, by="alice") is None
        answer = await client.response(request_id)
        assert answer["result"]["content"][0]["text"] == "rm -rf /"
        assert calls(server) == 1
        assert gateway.approvals.listing() == []


async def test_a_denied_call_never_reaches_the_server_and_says_who(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeServer("fx", tools={"echo": echo})
    async with running_gateway(approving({"tools": ["ec*"], "ask": "console"}), server) as (gateway, client):
        await client.initialize()
        request_id = await client.start("tools/call", CALL)
        held = await held_one(gateway)
        gateway.approvals.decide(held["id"], approve=False, by="alice", reason="not on prod")
        error = (await client.response(request_id))["error"]
        assert error["code"] == -32010
        assert "denied by alice at" in error["message"] and "not on prod" in error["message"]
        assert calls(server) == 0
        assert gateway.approvals.decide(held["id"], approve=True, by="bob") is not None  # decided once


async def test_nobody_deciding_in_time_denies_the_call(autojump_clock: trio.testing.MockClock) -> None:
    server = FakeServer("fx", tools={"echo": echo})
    rule = {"tools": ["echo"], "ask": "console", "timeout": 60}
    async with running_gateway(approving(rule), server) as (gateway, client):
        await client.initialize()
        error = (await client.request("tools/call", CALL))["error"]
        assert error["code"] == -32010 and "not approved within 60 s" in error["message"]
        assert calls(server) == 0 and gateway.approvals.listing() == []


async def test_a_client_that_declared_elicitation_is_asked_in_its_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeServer("fx", tools={"echo": echo})
    async with running_gateway(approving({"tools": ["echo"]}), server) as (gateway, client):
        await client.initialize(capabilities={"elicitation": {}})
        request_id = await client.start("tools/call", CALL)
        question = await client.next_request("elicitation/create")
        params = question["params"]
        assert "fx" in params["message"] and "echo" in params["message"] and "rm -rf /" in params["message"]
        assert params["requestedSchema"]["properties"]["approve"]["type"] == "boolean"
        assert gateway.approvals.listing()[0]["asked"] == "client"
        await client.answer(question["id"], {"action": "accept", "content": {"approve": True}})
        assert "result" in await client.response(request_id)
        assert calls(server) == 1

        request_id = await client.start("tools/call", CALL)
        question = await client.next_request("elicitation/create")
        await client.answer(question["id"], {"action": "decline"})
        error = (await client.response(request_id))["error"]
        assert error["code"] == -32010 and "declined in the client" in error["message"]
        assert calls(server) == 1


async def test_a_2026_07_28_client_is_asked_as_an_input_required_round(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeServer("fx", tools={"echo": echo})
    async with running_gateway(approving({"tools": ["echo"]}), server) as (_, client):
        first = await client.result("tools/call", {**CALL, "_meta": MODERN})
        assert first["resultType"] == "input_required"
        ((key, question),) = first["inputRequests"].items()
        assert question["method"] == "elicitation/create"
        retry = {
            **CALL,
            "inputResponses": {key: {"action": "accept", "content": {"approve": True}}},
            "requestState": first["requestState"],
            "_meta": MODERN,
        }
        done = await client.result("tools/call", retry)
        assert done["resultType"] == "complete" and done["content"][0]["text"] == "rm -rf /"
        assert calls(server) == 1


async def test_a_client_leaving_withdraws_its_held_call(autojump_clock: trio.testing.MockClock) -> None:
    server = FakeServer("fx", tools={"echo": echo})
    async with running_daemon(approving({"tools": ["echo"], "ask": "console"}), server) as (gateway, attach):
        client = await attach()
        await client.initialize()
        await client.start("tools/call", CALL)
        held = await held_one(gateway)
        await client.close()
        await until_listed(gateway, 0)
        assert gateway.approvals.decide(held["id"], approve=True, by="alice") is not None
        await trio.sleep(10)
        assert calls(server) == 0


async def test_an_approval_remembered_for_the_session_or_the_identity_is_not_asked_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeServer("fx", tools={"echo": echo})
    rules = ({"tools": ["echo"], "ask": "console", "remember": "identity-for 1h"},)
    async with running_daemon(approving(*rules), server) as (gateway, attach):
        alice = Principal(name="alice", proven_by="token")
        first = await attach(principal=alice)
        await first.initialize()
        request_id = await first.start("tools/call", CALL)
        gateway.approvals.decide((await held_one(gateway))["id"], approve=True, by="alice")
        await first.response(request_id)
        second = await attach(principal=alice)  # another session, the same identity
        await second.initialize()
        assert "result" in await second.request("tools/call", CALL)
        bob = await attach(principal=Principal(name="bob", proven_by="token"))
        await bob.initialize()
        await bob.start("tools/call", CALL)
        assert (await held_one(gateway))["principal"] == "bob"  # not his approval
        assert gateway.approvals.forget() == 1


async def test_a_call_the_policy_blocks_is_never_shown_for_approval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeServer("fx", tools={"echo": echo})
    plugins = [{"name": "tool_access", "config": {"tools": {"deny": ["echo"]}}}]
    config = approving({"tools": ["echo"], "ask": "console"}, plugins=plugins)
    async with running_gateway(config, server) as (gateway, client):
        await client.initialize()
        error = (await client.request("tools/call", CALL))["error"]
        assert error["code"] == -32010 and "tool_access" in error["message"]
        assert gateway.approvals.listing() == []


def test_remember_and_ask_are_checked_when_the_config_is_read() -> None:
    with pytest.raises(ConfigError, match="remember"):
        approving({"tools": ["echo"], "remember": "forever"})
    with pytest.raises(ConfigError, match="ask"):
        approving({"tools": ["echo"], "ask": "email"})


async def test_every_step_is_an_approval_record_in_the_chain(
    autojump_clock: trio.testing.MockClock, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.audit.helpers import Clock
    from watchgate.audit import AuditActor, resolved_audit_config, verify_log
    from watchgate.cli.main import main

    log = tmp_path / "audit.jsonl"
    document = {
        "proxy": {"startup_wait": 15, "upstreams": [{"name": "fx", "command": ["fake"]}]},
        "approvals": [{"tools": ["echo"], "ask": "console", "timeout": 30}],
        "audit": {"path": str(log)},
    }
    config = parse_config(yaml.safe_dump(document))
    server = FakeServer("fx", tools={"echo": echo})
    audit = AuditActor(resolved_audit_config(config), threaded=False, wall_clock=Clock())
    async with running_gateway(config, server, audit=audit) as (gateway, client):
        await client.initialize()
        request_id = await client.start("tools/call", CALL)
        gateway.approvals.decide((await held_one(gateway))["id"], approve=True, by="alice")
        await client.response(request_id)
        await client.request("tools/call", CALL)  # nobody decides: timed out
    records = [json.loads(line) for line in log.read_text().splitlines()]
    approvals = [r for r in records if r["event"] == "approval"]
    assert [r.get("decision") for r in approvals] == [None, "allow", None, "deny"]
    assert "approved by alice (cli)" in approvals[1]["reason"] and approvals[1]["duration_ms"] >= 0
    assert "timed out by nobody (timeout)" in approvals[3]["reason"]
    assert all(r["tool"] == "echo" and r["server"] == "fx" for r in approvals)
    assert verify_log(str(log)).ok
    capsys.readouterr()
    assert main(["audit", "tail", "--approvals", str(log)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all("approval" in line for line in lines)


async def test_a_call_held_when_the_gateway_stops_is_withdrawn_and_answered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeServer("fx", tools={"echo": echo})
    async with running_daemon(approving({"tools": ["echo"], "ask": "console"}), server) as (gateway, attach):
        client = await attach()
        await client.initialize()
        request_id = await client.start("tools/call", CALL)
        await held_one(gateway)
        await gateway.end_sessions("Watchgate is shutting down")
        error = (await client.response(request_id))["error"]
        assert error["code"] == -32010 and "Watchgate is shutting down" in error["message"]
        assert calls(server) == 0
