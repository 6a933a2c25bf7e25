"""The gateway in one process with fake upstreams: routing, errors and timeouts under MockClock."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from tests.gateway.fakes import FakeServer, crash, echo, hang, make_config, running_gateway
from tests.plugins.helpers import RichServer


async def test_calls_route_by_prefix_and_ids_come_back(autojump_clock: trio.testing.MockClock) -> None:
    alpha = FakeServer("alpha", tools={"echo": echo})
    beta = FakeServer("beta", tools={"echo": echo})
    async with running_gateway(make_config("alpha", "beta"), alpha, beta) as (_, client):
        await client.initialize()
        tools = await client.result("tools/list")
        assert [t["name"] for t in tools["tools"]] == ["alpha__echo", "beta__echo"]
        response = await client.response(
            await client.start(
                "tools/call", {"name": "beta__echo", "arguments": {"text": "b"}}, request_id="x-1"
            )
        )
        assert response == {
            "jsonrpc": "2.0",
            "id": "x-1",
            "result": {"content": [{"type": "text", "text": "b"}]},
        }
        assert beta.session.methods().count("tools/call") == 1
        assert alpha.session.methods().count("tools/call") == 0
        sent = next(m for m in beta.session.received if m.get("method") == "tools/call")
        assert sent["params"]["name"] == "echo" and isinstance(sent["id"], int)


async def test_request_timeout_answers_32001_and_cancels_upstream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slow = FakeServer("slow", tools={"hang": hang})
    async with running_gateway(make_config("slow", request_timeout=5), slow) as (_, client):
        await client.initialize()
        started = trio.current_time()
        response = await client.request("tools/call", {"name": "hang"})
        assert response["error"]["code"] == -32001
        assert "slow" in response["error"]["message"] and "5 s" in response["error"]["message"]
        assert 5 <= trio.current_time() - started < 7
        await client.wait_for(lambda: "notifications/cancelled" in slow.session.methods())


async def test_crash_fails_in_flight_with_32003_and_restarts(autojump_clock: trio.testing.MockClock) -> None:
    flaky = FakeServer("flaky", tools={"crash": crash, "hang": hang, "echo": echo})
    steady = FakeServer("steady", tools={"echo": echo})
    config = make_config("flaky", "steady", backoff={"initial": 1, "max": 1, "jitter": 0})
    async with running_gateway(config, flaky, steady) as (gateway, client):
        await client.initialize()
        hanging = await client.start("tools/call", {"name": "flaky__hang"})
        crashed = await client.request("tools/call", {"name": "flaky__crash"})
        other = await client.response(hanging)
        for response in (crashed, other):
            error = response["error"]
            assert error["code"] == -32003
            assert "flaky" in error["message"] and "exited with code 3" in error["message"]
            assert "boom: out of memory" in error["message"]
        assert (await client.result("tools/call", {"name": "steady__echo", "arguments": {"text": "ok"}}))[
            "content"
        ][0]["text"] == "ok"
        await client.wait_for(
            lambda: len(flaky.sessions) == 2 and gateway.router.view("flaky").state == "running"
        )
        assert gateway.upstream_supervisor.status("flaky").restarts == 1
        result = await client.result("tools/call", {"name": "flaky__echo", "arguments": {"text": "back"}})
        assert result["content"][0]["text"] == "back"
        assert len(client.notified("notifications/tools/list_changed")) >= 2


async def test_tools_that_run_only_as_tasks_are_left_out_saying_so(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The gateway offers its clients no MCP tasks: a tool that runs only as one (server-everything's
    simulate-research-query) could never be called through it, so it is not listed."""
    research = RichServer(
        "lab",
        tools={"research": echo, "maybe": echo, "plain": echo},
        definitions={
            "research": {"execution": {"taskSupport": "required"}},
            "maybe": {"execution": {"taskSupport": "optional"}},
        },
    )
    with caplog.at_level(logging.INFO, logger="watchgate.router"):
        async with running_gateway(make_config("lab", "other"), research, FakeServer("other")) as (_, client):
            await client.initialize()
            names = [t["name"] for t in (await client.result("tools/list"))["tools"]]
            assert names == ["lab__maybe", "lab__plain"]
            error = (await client.request("tools/call", {"name": "lab__research"}))["error"]
            assert error["code"] == -32602 and research.session.requests("tools/call") == []
    assert "[lab] left out 'research': it runs only as an MCP task" in caplog.text
