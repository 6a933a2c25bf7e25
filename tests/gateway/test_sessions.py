"""Ids, progress tokens and cancellations are mapped both ways; server-to-client requests find their client."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio

from tests.gateway.fakes import (
    FakeServer,
    FakeSession,
    echo,
    hang,
    make_config,
    running_daemon,
    running_gateway,
    text,
)

# --- ids ---------------------------------------------------------------------------------------


async def test_same_client_id_to_two_servers_gets_two_answers(autojump_clock: trio.testing.MockClock) -> None:
    async def slow_echo(session: FakeSession, args: dict[str, Any]) -> Any:
        await trio.sleep(2)
        return text(f"{session.server.name}:{args['text']}")

    alpha = FakeServer("alpha", tools={"echo": slow_echo})
    beta = FakeServer("beta", tools={"echo": echo})
    async with running_gateway(make_config("alpha", "beta"), alpha, beta) as (_, client):
        await client.initialize()
        await client.start("tools/call", {"name": "alpha__echo", "arguments": {"text": "a"}}, request_id=7)
        await client.start("tools/call", {"name": "beta__echo", "arguments": {"text": "b"}}, request_id=7)
        answers = []
        for _ in range(2):
            answers.append((await client.response(7))["result"]["content"][0]["text"])
        assert answers == ["b", "alpha:a"]


async def test_upstream_sees_gateway_unique_integer_ids(autojump_clock: trio.testing.MockClock) -> None:
    solo = FakeServer("solo", tools={"echo": echo})
    async with running_gateway(make_config("solo"), solo) as (_, client):
        await client.initialize()
        for request_id in ("a", 1, "a"):
            await client.response(await client.start("tools/call", {"name": "echo"}, request_id=request_id))
        ids = [m["id"] for m in solo.session.received if "id" in m and "method" in m]
        assert all(isinstance(i, int) for i in ids)
        assert len(ids) == len(set(ids))
        calls = solo.session.requests("tools/call")
        assert len({c["id"] for c in calls}) == 3


# --- progress ------------------------------------------------------------------------------------


async def _report(session: FakeSession, args: dict[str, Any]) -> Any:
    received = session.requests("tools/call")[-1]
    token = received["params"]["_meta"]["progressToken"]
    await session.notify("notifications/progress", {"progressToken": token, "progress": 1, "total": 2})
    await session.notify("notifications/progress", {"progressToken": 999999, "progress": 1})
    return text("done")


async def test_progress_token_is_mapped_both_ways_and_arrives_before_the_response(
    autojump_clock: trio.testing.MockClock,
) -> None:
    solo = FakeServer("solo", tools={"report": _report})
    async with running_gateway(make_config("solo"), solo) as (_, client):
        await client.initialize()
        params = {"name": "report", "_meta": {"progressToken": "my-token", "other": 1}}
        request_id = await client.start("tools/call", params)
        await client.response(request_id)
        upstream = solo.session.requests("tools/call")[0]
        assert upstream["params"]["_meta"] == {"progressToken": upstream["id"], "other": 1}
        # the one for the unknown token was dropped
        assert client.notified("notifications/progress") == [
            {
                "jsonrpc": "2.0",
                "method": "notifications/progress",
                "params": {"progressToken": "my-token", "progress": 1, "total": 2},
            }
        ]


async def test_progress_comes_before_the_response_on_the_wire(autojump_clock: trio.testing.MockClock) -> None:
    solo = FakeServer("solo", tools={"report": _report})
    async with running_gateway(make_config("solo"), solo) as (_, client):
        await client.initialize()
        request_id = await client.start("tools/call", {"name": "report", "_meta": {"progressToken": 5}})
        await client.response(request_id)
        order = [m.get("method", m.get("id")) for m in client.received[1:]]
        assert order == ["notifications/progress", request_id]
        assert client.notified("notifications/progress")[0]["params"]["progressToken"] == 5


async def test_request_without_progress_token_is_forwarded_unchanged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    solo = FakeServer("solo", tools={"echo": echo})
    async with running_gateway(make_config("solo"), solo) as (_, client):
        await client.initialize()
        params = {"name": "echo", "arguments": {"text": "progressToken"}, "_meta": {"x": 1}}
        await client.result("tools/call", params)
        assert solo.session.requests("tools/call")[0]["params"] == params


# --- cancellation --------------------------------------------------------------------------------


async def test_client_cancel_reaches_the_right_upstream_and_late_answer_is_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    release = trio.Event()

    async def wait_then_answer(session: FakeSession, args: dict[str, Any]) -> Any:
        await release.wait()
        return text("too late")

    alpha = FakeServer("alpha", tools={"slow": wait_then_answer})
    beta = FakeServer("beta", tools={"slow": wait_then_answer})
    async with running_gateway(make_config("alpha", "beta"), alpha, beta) as (gateway, client):
        await client.initialize()
        request_id = await client.start("tools/call", {"name": "beta__slow"})
        await client.wait_for(lambda: gateway.upstreams["beta"].in_flight == 1)
        await client.notify("notifications/cancelled", {"requestId": request_id, "reason": "user hit stop"})
        await client.wait_for(lambda: bool(beta.session.requests("notifications/cancelled")))
        call = beta.session.requests("tools/call")[0]
        assert beta.session.requests("notifications/cancelled")[0]["params"] == {
            "requestId": call["id"],
            "reason": "user hit stop",
        }
        assert alpha.session.requests("notifications/cancelled") == []
        assert gateway.upstreams["beta"].in_flight == 0
        release.set()
        await trio.sleep(1)
        assert request_id not in client.responses


async def test_client_disconnect_cancels_its_requests_upstream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    solo = FakeServer("solo", tools={"hang": hang})
    async with running_daemon(make_config("solo"), solo) as (gateway, attach):
        client = await attach()
        await client.initialize()
        await client.start("tools/call", {"name": "hang"})
        await client.wait_for(lambda: gateway.upstreams["solo"].in_flight == 1)
        await client.close()  # an attach session ends: its requests are cancelled at once
        await client.wait_for(lambda: bool(solo.session.requests("notifications/cancelled")))
        call = solo.session.requests("tools/call")[0]
        cancelled = solo.session.requests("notifications/cancelled")
        assert [c["params"]["requestId"] for c in cancelled] == [call["id"]]
        assert cancelled[0]["params"]["reason"] == "client disconnected"
        assert gateway.upstreams["solo"].in_flight == 0
        assert gateway.upstream_supervisor.status("solo").state == "running"


# --- server-to-client requests -------------------------------------------------------------------


async def _ask_for_sampling(session: FakeSession, args: dict[str, Any]) -> Any:
    answer = await session.request_client("sampling/createMessage", {"messages": [], "maxTokens": 5})
    return text(repr(answer.get("result") or answer.get("error")))


async def test_sampling_reaches_the_client_and_the_answer_goes_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    alpha = FakeServer("alpha", tools={"ask": _ask_for_sampling})
    beta = FakeServer("beta", tools={"echo": echo})
    async with running_gateway(make_config("alpha", "beta"), alpha, beta) as (_, client):
        await client.initialize(capabilities={"sampling": {}})
        request_id = await client.start("tools/call", {"name": "alpha__ask"})
        asked = await client.next_request("sampling/createMessage")
        assert asked["id"] == "wg-alpha-1"
        assert asked["params"] == {"messages": [], "maxTokens": 5}
        await client.answer(asked["id"], {"role": "assistant", "content": {"type": "text", "text": "hi"}})
        result = (await client.response(request_id))["result"]
        assert result["content"][0]["text"] == repr(
            {"role": "assistant", "content": {"type": "text", "text": "hi"}}
        )
        answer = next(m for m in alpha.session.received if "method" not in m)
        assert answer["id"] == "srv-1"


async def test_sampling_without_a_request_in_flight_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    solo = FakeServer("solo", tools={"echo": echo})
    async with running_gateway(make_config("solo"), solo) as (_, client):
        await client.initialize(capabilities={"sampling": {}})
        answer = await solo.session.request_client("sampling/createMessage", {"messages": []})
        assert answer["error"]["code"] == -32601
        message = answer["error"]["message"]
        assert message == "no client with the 'sampling' capability has a request in flight on 'solo'"
        assert client.requests == []


async def test_sampling_for_a_client_without_the_capability_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    solo = FakeServer("solo", tools={"ask": _ask_for_sampling})
    async with running_gateway(make_config("solo"), solo) as (_, client):
        await client.initialize(capabilities={"roots": {}})
        result = await client.result("tools/call", {"name": "ask"})
        refused = result["content"][0]["text"]
        assert "-32601" in refused and "'sampling' capability" in refused
        assert client.requests == []


async def test_unknown_server_request_is_refused_naming_the_method(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def ask_odd(session: FakeSession, args: dict[str, Any]) -> Any:
        answer = await session.request_client("tasks/dance", {})
        return text(answer["error"]["message"])

    solo = FakeServer("solo", tools={"odd": ask_odd})
    async with running_gateway(make_config("solo"), solo) as (_, client):
        await client.initialize(capabilities={"sampling": {}})
        result = await client.result("tools/call", {"name": "odd"})
        assert (
            result["content"][0]["text"] == "'tasks/dance' is not a request the gateway forwards to clients"
        )


async def test_upstream_ping_is_answered_by_the_gateway(autojump_clock: trio.testing.MockClock) -> None:
    solo = FakeServer("solo")
    async with running_gateway(make_config("solo"), solo) as (_, client):
        await client.initialize()
        answer = await solo.session.request_client("ping", {})
        assert answer == {"jsonrpc": "2.0", "id": "srv-1", "result": {}}
        assert client.requests == []


async def test_server_cancel_of_its_own_request_reaches_the_client_with_its_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def ask_then_cancel(session: FakeSession, args: dict[str, Any]) -> Any:
        request = {"jsonrpc": "2.0", "id": 41, "method": "sampling/createMessage", "params": {}}
        await session.send(request)
        await session.notify("notifications/cancelled", {"requestId": 41, "reason": "changed my mind"})
        await session.notify("notifications/cancelled", {"requestId": 40})  # not one of ours: dropped
        return text("ok")

    solo = FakeServer("solo", tools={"ask": ask_then_cancel})
    async with running_gateway(make_config("solo"), solo) as (_, client):
        await client.initialize(capabilities={"sampling": {}})
        await client.result("tools/call", {"name": "ask"})
        asked = await client.next_request("sampling/createMessage")
        assert client.notified("notifications/cancelled") == [
            {
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": {"requestId": asked["id"], "reason": "changed my mind"},
            }
        ]
        # a late answer to the cancelled request is not passed upstream
        await client.answer(asked["id"], {"role": "assistant"})
        await trio.sleep(1)
        assert [m for m in solo.session.received if "method" not in m] == []


# --- several clients on one gateway (the daemon) -------------------------------------------------


async def test_a_client_leaving_cancels_only_its_own_requests(autojump_clock: trio.testing.MockClock) -> None:
    solo = FakeServer("solo", tools={"hang": hang, "echo": echo})
    async with running_daemon(make_config("solo"), solo) as (gateway, attach):
        stays, leaves = await attach(), await attach()
        await stays.initialize()
        await leaves.initialize()
        kept = await stays.start("tools/call", {"name": "hang"}, request_id=1)
        await leaves.start("tools/call", {"name": "hang"}, request_id=1)
        await stays.wait_for(lambda: gateway.upstreams["solo"].in_flight == 2)
        first, second = solo.session.requests("tools/call")
        await leaves.close()
        await stays.wait_for(lambda: len(gateway.sessions()) == 1)
        await stays.wait_for(lambda: bool(solo.session.requests("notifications/cancelled")))
        assert [c["params"] for c in solo.session.requests("notifications/cancelled")] == [
            {"requestId": second["id"], "reason": "client disconnected"}
        ]
        assert gateway.upstreams["solo"].in_flight == 1
        assert (await stays.result("tools/call", {"name": "echo", "arguments": {"text": "on"}}))["content"]
        assert kept not in stays.responses and first["id"] != second["id"]


async def test_server_request_goes_to_the_client_with_the_request_in_flight(
    autojump_clock: trio.testing.MockClock,
) -> None:
    solo = FakeServer("solo", tools={"ask": _ask_for_sampling, "echo": echo})
    async with running_daemon(make_config("solo"), solo) as (_, attach):
        asker, bystander = await attach(), await attach()
        await asker.initialize(capabilities={"sampling": {}})
        await bystander.initialize(capabilities={"sampling": {}})
        await bystander.result("tools/call", {"name": "echo"})  # answered: no longer in flight
        request_id = await asker.start("tools/call", {"name": "ask"})
        asked = await asker.next_request("sampling/createMessage")
        await asker.answer(asked["id"], {"role": "assistant", "content": {"type": "text", "text": "x"}})
        assert "assistant" in (await asker.response(request_id))["result"]["content"][0]["text"]
        assert bystander.requests == []


async def test_a_question_is_never_put_to_another_client(autojump_clock: trio.testing.MockClock) -> None:
    """Client A's call makes the server ask; client B started a call on the same server since.
    Over stdio nothing says whose call the question belongs to: the server is told no, and
    neither client sees the other's question (ADR-025)."""

    async def ask_later(session: FakeSession, args: dict[str, Any]) -> Any:
        await trio.sleep(2.5)
        return await _ask_for_sampling(session, args)

    solo = FakeServer("solo", tools={"ask": ask_later, "hang": hang})
    async with running_daemon(make_config("solo"), solo) as (_, attach):
        a, b = await attach(), await attach()
        await a.initialize(capabilities={"sampling": {}})
        await b.initialize(capabilities={"sampling": {}})
        asking = await a.start("tools/call", {"name": "ask"})
        await trio.sleep(0.8)
        await b.start("tools/call", {"name": "hang"})
        answer = (await a.response(asking))["result"]["content"][0]["text"]
        assert "Watchgate does not guess" in answer and "2 clients have calls in flight" in answer
        assert a.requests == [] and b.requests == []
        # with A alone in flight, A is asked
        again = await a.start("tools/call", {"name": "ask"})
        await b.close()
        asked = await a.next_request("sampling/createMessage")
        await a.answer(asked["id"], {"role": "assistant", "content": {"type": "text", "text": "x"}})
        assert "assistant" in (await a.response(again))["result"]["content"][0]["text"]


async def test_client_leaving_with_a_server_request_unanswered_tells_the_upstream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    solo = FakeServer("solo", tools={"ask": _ask_for_sampling})
    async with running_daemon(make_config("solo"), solo) as (gateway, attach):
        other, asker = await attach(), await attach()
        await other.initialize()
        await asker.initialize(capabilities={"sampling": {}})
        await asker.start("tools/call", {"name": "ask"})
        await asker.next_request("sampling/createMessage")
        await asker.close()
        await other.wait_for(lambda: len(gateway.sessions()) == 1)
        await other.wait_for(lambda: any("method" not in m for m in solo.session.received))
        answer = next(m for m in solo.session.received if "method" not in m)
        assert answer == {
            "jsonrpc": "2.0",
            "id": "srv-1",
            "error": {"code": -32603, "message": "the client that was asked has disconnected"},
        }


async def test_notifications_reach_every_attached_client_until_it_leaves(
    autojump_clock: trio.testing.MockClock,
) -> None:
    solo = FakeServer("solo")
    async with running_daemon(make_config("solo"), solo) as (gateway, attach):
        one, two = await attach(), await attach()
        await one.initialize()
        await two.initialize()
        await solo.session.notify("notifications/message", {"level": "info", "data": 1})
        await one.wait_for(lambda: bool(one.notifications) and bool(two.notifications))
        await two.close()
        await one.wait_for(lambda: gateway.notifier.client_count == 1)
        await solo.session.notify("notifications/message", {"level": "info", "data": 2})
        await one.wait_for(lambda: len(one.notifications) == 2)
        assert [n["params"]["data"] for n in two.notifications] == [1]


async def test_client_whose_output_is_gone_is_detached_and_its_requests_cancelled(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="watchgate.client")
    solo = FakeServer("solo", tools={"hang": hang, "echo": echo})
    async with running_daemon(make_config("solo"), solo) as (gateway, attach):
        healthy = await attach()
        await healthy.initialize()
        to_gateway, gateway_in = trio.testing.memory_stream_one_way_pair()
        gateway_out, client_in = trio.testing.memory_stream_one_way_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(gateway.attach_client, gateway_in, gateway_out)
            await healthy.wait_for(lambda: len(gateway.sessions()) == 2)
            await client_in.aclose()  # the peer stopped reading: nothing it is sent can arrive
            line = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "hang"}}\n'
            await to_gateway.send_all(line)
            await to_gateway.send_all(b'{"jsonrpc": "2.0", "id": 2, "method": "ping"}\n')
            await healthy.wait_for(lambda: len(gateway.sessions()) == 1)
        await healthy.wait_for(lambda: bool(solo.session.requests("notifications/cancelled")))
        assert gateway.upstreams["solo"].in_flight == 0
        assert any("output closed" in r.getMessage() for r in caplog.records)
        assert (await healthy.result("tools/call", {"name": "echo", "arguments": {"text": "x"}}))["content"]


async def test_answer_to_a_request_nobody_sent_is_ignored(autojump_clock: trio.testing.MockClock) -> None:
    solo = FakeServer("solo", tools={"echo": echo})
    async with running_gateway(make_config("solo"), solo) as (_, client):
        await client.initialize(capabilities={"sampling": {}})
        await client.answer("wg-solo-99", {"role": "assistant"})
        await client.answer(5, {})
        assert (await client.result("tools/call", {"name": "echo", "arguments": {"text": "x"}}))["content"]
        assert [m for m in solo.session.received if "method" not in m] == []


async def test_server_request_pending_when_the_upstream_crashes_is_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def ask_then_die(session: FakeSession, args: dict[str, Any]) -> Any:
        await session.send({"jsonrpc": "2.0", "id": 1, "method": "sampling/createMessage", "params": {}})
        await trio.sleep(1)
        session.crash(2)
        await trio.sleep_forever()

    solo = FakeServer("solo", tools={"ask": ask_then_die, "echo": echo})
    config = make_config("solo", backoff={"initial": 1, "max": 1, "jitter": 0})
    async with running_gateway(config, solo) as (gateway, client):
        await client.initialize(capabilities={"sampling": {}})
        error = (await client.request("tools/call", {"name": "ask"}))["error"]
        assert error["code"] == -32003 and "exited with code 2" in error["message"]
        asked = await client.next_request("sampling/createMessage")
        await client.wait_for(lambda: gateway.router.view("solo").state == "running")
        await client.answer(asked["id"], {"role": "assistant"})  # too late: that session is gone
        await client.result("tools/call", {"name": "echo"})
        assert [m for m in solo.session.received if "method" not in m] == []


async def test_daemon_shutdown_with_clients_attached_is_clean(autojump_clock: trio.testing.MockClock) -> None:
    solo = FakeServer("solo", tools={"hang": hang})
    async with running_daemon(make_config("solo"), solo) as (gateway, attach):
        first, second = await attach(), await attach()
        await first.initialize()
        await second.initialize()
        await second.start("tools/call", {"name": "hang"})
        await first.wait_for(lambda: gateway.upstreams["solo"].in_flight == 1)
    # leaving the block cancelled the daemon: every child stopped, nothing raised
    assert gateway.upstream_supervisor.status("solo").state == "stopped"
    assert not gateway.upstreams["solo"].running


async def test_a_renamed_call_keeps_its_progress_token_mapped(autojump_clock: trio.testing.MockClock) -> None:
    """Multi-server mode: the router decodes params once to rename the tool, and the upstream
    swaps the progress token in those same fields: both changes reach the server."""
    alpha, beta = FakeServer("alpha", tools={"report": _report}), FakeServer("beta")
    async with running_gateway(make_config("alpha", "beta"), alpha, beta) as (_, client):
        await client.initialize()
        params = {"name": "alpha__report", "arguments": {"n": 1}, "_meta": {"progressToken": 5, "other": 1}}
        await client.response(await client.start("tools/call", params))
        upstream = alpha.session.requests("tools/call")[0]
        assert upstream["params"] == {
            "name": "report",
            "arguments": {"n": 1},
            "_meta": {"progressToken": upstream["id"], "other": 1},
        }
        assert [n["params"]["progressToken"] for n in client.notified("notifications/progress")] == [5]
