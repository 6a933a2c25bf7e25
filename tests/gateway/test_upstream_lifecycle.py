"""Upstreams start, fail, restart and misbehave; the client always gets a clear answer."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest
import trio

from tests.gateway.fakes import (
    FakeServer,
    FakeSession,
    crash,
    echo,
    hang,
    make_config,
    running_daemon,
    running_gateway,
)
from watchgate.config.schema import SharedStateConfig

NO_JITTER = {"initial": 1, "max": 1, "jitter": 0}


async def never_answer(session: FakeSession) -> None:
    await trio.sleep_forever()


async def test_initialize_without_answer_fails_start_after_startup_timeout_and_is_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    mute = FakeServer("mute", on_initialize=never_answer)
    config = make_config("mute", startup_timeout=2, backoff=NO_JITTER, startup_wait=100)
    async with running_gateway(config, mute) as (gateway, _):
        started = trio.current_time()
        await _wait(lambda: gateway.upstream_supervisor.status("mute").last_exit is not None)
        assert trio.current_time() - started == pytest.approx(2, abs=0.02)
        last_exit = gateway.upstream_supervisor.status("mute").last_exit
        assert "initialize" in last_exit and "2 s" in last_exit
        # backoff of 1 s, then a second attempt with its own 2 s
        await _wait(lambda: len(mute.sessions) == 2)
        assert trio.current_time() - started == pytest.approx(3, abs=0.02)
        assert gateway.upstream_supervisor.status("mute").restarts == 1


async def test_unsupported_protocol_version_fails_start_naming_the_version(
    autojump_clock: trio.testing.MockClock,
) -> None:
    future = FakeServer("future", protocol_version="2099-01-01")
    config = make_config("future", backoff=NO_JITTER)
    async with running_gateway(config, future) as (gateway, _):
        await _wait(lambda: gateway.upstream_supervisor.status("future").last_exit is not None)
        assert (
            "unsupported protocol version '2099-01-01'"
            in gateway.upstream_supervisor.status("future").last_exit
        )
        # the handshake never completed: no notifications/initialized was sent
        assert "notifications/initialized" not in future.session.methods()


async def test_start_failures_back_off_then_fail_and_calls_name_state_and_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    broken = FakeServer("broken", tools={"echo": echo})
    broken.fail_start = "cannot spawn 'nope': No such file or directory"
    steady = FakeServer("steady", tools={"echo": echo})
    config = make_config("broken", "steady", max_restarts=2, backoff={"initial": 4, "max": 4, "jitter": 0})
    async with running_gateway(config, broken, steady) as (gateway, client):
        await client.initialize()
        assert gateway.upstream_supervisor.status("broken").state == "backoff"
        response = await client.request("tools/call", {"name": "broken__echo"})
        assert response["error"]["code"] == -32003
        assert "'broken'" in response["error"]["message"]
        assert "state: backoff" in response["error"]["message"]
        await _wait(lambda: gateway.upstream_supervisor.status("broken").state == "failed")
        assert gateway.upstream_supervisor.status("broken").restarts == 2
        error = (await client.request("tools/call", {"name": "broken__echo"}))["error"]
        assert error["code"] == -32003
        assert "state: failed" in error["message"]
        assert "cannot spawn 'nope'" in error["message"]
        assert error["data"]["state"] == "failed" and "cannot spawn" in error["data"]["lastError"]
        # the healthy sibling is untouched
        result = await client.result("tools/call", {"name": "steady__echo", "arguments": {"text": "ok"}})
        assert result["content"][0]["text"] == "ok"


async def test_clean_exit_under_transient_is_not_restarted(autojump_clock: trio.testing.MockClock) -> None:
    async def quit_cleanly(session: FakeSession, args: dict[str, object]) -> object:
        session.crash(0)
        await trio.sleep_forever()

    done = FakeServer("done", tools={"quit": quit_cleanly, "echo": echo})
    config = make_config("done", restart="transient", backoff=NO_JITTER)
    async with running_gateway(config, done) as (gateway, client):
        await client.initialize()
        first = await client.request("tools/call", {"name": "quit"})
        assert first["error"]["code"] == -32003
        assert "exited with code 0" in first["error"]["message"]
        await _wait(lambda: gateway.upstream_supervisor.status("done").state == "stopped")
        await trio.sleep(30)
        assert len(done.sessions) == 1
        later = await client.request("tools/call", {"name": "echo"})
        assert later["error"]["code"] == -32003 and "state: stopped" in later["error"]["message"]


async def test_requests_queued_while_starting_are_delivered_once_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def slow_start(session: FakeSession) -> None:
        await trio.sleep(5)

    slow = FakeServer("slow", tools={"echo": echo}, on_initialize=slow_start)
    async with running_gateway(make_config("slow", startup_wait=1), slow) as (gateway, client):
        started = trio.current_time()
        await client.initialize()
        assert trio.current_time() - started == pytest.approx(1)
        assert gateway.router.view("slow").state == "starting"
        result = await client.result("tools/call", {"name": "echo", "arguments": {"text": "late"}})
        assert result["content"][0]["text"] == "late"
        assert trio.current_time() - started == pytest.approx(5)


async def test_request_queued_while_a_start_fails_gets_the_start_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    mute = FakeServer("mute", tools={"echo": echo}, on_initialize=never_answer)
    config = make_config("mute", startup_timeout=5, startup_wait=1, backoff=NO_JITTER)
    async with running_gateway(config, mute) as (_, client):
        await client.initialize()
        started = trio.current_time()
        error = (await client.request("tools/call", {"name": "echo"}))["error"]
        assert trio.current_time() - started == pytest.approx(4)
        assert error["code"] == -32003
        assert "no answer to initialize within 5 s" in error["message"]
        assert "tools/call" not in mute.session.methods()


async def test_request_to_upstream_in_backoff_fails_fast(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = FakeServer("flaky", tools={"crash": crash, "echo": echo})
    config = make_config("flaky", backoff={"initial": 50, "max": 50, "jitter": 0})
    async with running_gateway(config, flaky) as (gateway, client):
        await client.initialize()
        with caplog.at_level(logging.DEBUG):
            crashed = (await client.request("tools/call", {"name": "crash"}))["error"]
            await _wait(lambda: gateway.router.view("flaky").state == "backoff")
        # said once, in words: no exception class names, no state the docs do not name
        assert "Upstream" not in crashed["message"] and "crashed" not in crashed["message"]
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "exited" in r.getMessage()]
        assert [r.getMessage() for r in warnings] == [
            "[flaky] exited: exited with code 3; stderr: boom: out of memory"
        ]
        asked = trio.current_time()
        error = (await client.request("tools/call", {"name": "echo"}))["error"]
        assert trio.current_time() - asked < 1
        assert error["code"] == -32003
        assert "state: backoff" in error["message"] and "exited with code 3" in error["message"]


async def test_garbage_from_upstream_is_logged_and_skipped(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def noisy(session: FakeSession, args: dict[str, object]) -> object:
        await session.send_raw(b"this is not json\n")
        await session.send_raw(b'{"jsonrpc": "2.0", "id": 1}\n')
        return {"content": [{"type": "text", "text": "fine"}]}

    messy = FakeServer("messy", tools={"noisy": noisy, "echo": echo})
    async with running_gateway(make_config("messy"), messy) as (_, client):
        await client.initialize()
        with caplog.at_level(logging.WARNING, logger="watchgate.upstream"):
            result = await client.result("tools/call", {"name": "noisy"})
        assert result["content"][0]["text"] == "fine"
        bad = [r.getMessage() for r in caplog.records if "sent a bad message" in r.getMessage()]
        assert len(bad) == 2
        assert "[messy]" in bad[0] and "parse error" in bad[0] and "this is not json" in bad[0]
        assert "invalid request" in bad[1]
        again = await client.result("tools/call", {"name": "echo", "arguments": {"text": "still"}})
        assert again["content"][0]["text"] == "still"


async def test_error_answer_to_a_list_call_is_logged_and_treated_as_empty(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    half = FakeServer(
        "half",
        tools={"echo": echo},
        prompts=["greet"],
        capabilities={"tools": {}, "prompts": {}},
        fail_methods=("prompts/list",),
    )
    with caplog.at_level(logging.WARNING, logger="watchgate.router"):
        async with running_gateway(make_config("half"), half) as (_, client):
            await client.initialize()
            assert await client.result("prompts/list") == {"prompts": []}
            assert [t["name"] for t in (await client.result("tools/list"))["tools"]] == ["echo"]
    warnings = [r.getMessage() for r in caplog.records]
    assert any("[half] could not list prompts" in w and "prompts/list is broken" in w for w in warnings)


async def test_request_timeout_frees_the_in_flight_entry(autojump_clock: trio.testing.MockClock) -> None:
    slow = FakeServer("slow", tools={"hang": hang})
    async with running_gateway(make_config("slow", request_timeout=3), slow) as (gateway, client):
        await client.initialize()
        request_id = await client.start("tools/call", {"name": "hang"})
        await _wait(lambda: gateway.upstreams["slow"].in_flight == 1)
        response = await client.response(request_id)
        assert response["error"]["code"] == -32001
        assert response["error"]["data"] == {"server": "slow", "timeout": 3}
        assert gateway.upstreams["slow"].in_flight == 0
        call = slow.session.requests("tools/call")[0]
        await _wait(lambda: bool(slow.session.requests("notifications/cancelled")))
        cancelled = slow.session.requests("notifications/cancelled")
        assert cancelled[0]["params"] == {"requestId": call["id"], "reason": "timed out in the gateway"}


async def _wait(predicate: object) -> None:
    assert callable(predicate)
    while not predicate():
        await trio.sleep(0.01)


async def test_restart_by_the_gateway_cancels_in_flight_requests_upstream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    solo = FakeServer("solo", tools={"hang": hang, "echo": echo})
    async with running_gateway(make_config("solo"), solo) as (gateway, client):
        await client.initialize()
        request_id = await client.start("tools/call", {"name": "hang"})
        await _wait(lambda: gateway.upstreams["solo"].in_flight == 1)
        first = solo.session
        await gateway.upstream_supervisor.restart_child("solo")
        error = (await client.response(request_id))["error"]
        assert error["code"] == -32003 and "'solo'" in error["message"]
        call = first.requests("tools/call")[0]
        assert [c["params"] for c in first.requests("notifications/cancelled")] == [
            {"requestId": call["id"], "reason": "the gateway stopped this server"}
        ]
        result = await client.result("tools/call", {"name": "echo", "arguments": {"text": "again"}})
        assert result["content"][0]["text"] == "again" and len(solo.sessions) == 2


async def test_tool_with_a_name_that_is_not_a_string_is_left_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    odd = FakeServer("odd", tools={5: echo, "fine": echo})  # type: ignore[dict-item]
    other = FakeServer("other", tools={"echo": echo})
    async with running_gateway(make_config("odd", "other"), odd, other) as (gateway, client):
        started = trio.current_time()
        await client.initialize()
        assert trio.current_time() - started < 1  # answered at once, not at startup_wait
        tools = (await client.result("tools/list"))["tools"]
        assert [t["name"] for t in tools] == ["odd__fine", "other__echo"]
        assert gateway.root.status("router").restarts == 0
        result = await client.result("tools/call", {"name": "odd__fine", "arguments": {"text": "ok"}})
        assert result["content"][0]["text"] == "ok"


async def test_malformed_progress_or_cancel_from_upstream_is_skipped(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def odd(session: FakeSession, args: dict[str, object]) -> object:
        await session.send({"jsonrpc": "2.0", "method": "notifications/progress", "params": [1]})
        await session.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": "x"})
        return {"content": [{"type": "text", "text": "fine"}]}

    messy = FakeServer("messy", tools={"odd": odd})
    async with running_gateway(make_config("messy"), messy) as (gateway, client):
        await client.initialize()
        with caplog.at_level(logging.WARNING, logger="watchgate.upstream"):
            result = await client.result("tools/call", {"name": "odd", "_meta": {"progressToken": 1}})
        assert result["content"][0]["text"] == "fine"
        assert len(messy.sessions) == 1 and gateway.upstream_supervisor.status("messy").restarts == 0
        assert client.notifications == []
        bad = [r.getMessage() for r in caplog.records if "sent a bad message" in r.getMessage()]
        assert len(bad) == 2 and "notifications/progress" in bad[0]


# --- reload (the daemon) ---------------------------------------------------------------------------


def _servers(*names: str) -> list[FakeServer]:
    return [FakeServer(name, tools={"echo": echo, "hang": hang}) for name in names]


def _changed(config: Any, name: str, **changes: Any) -> Any:
    upstreams = tuple(
        msgspec.structs.replace(u, **changes) if u.name == name else u for u in config.proxy.upstreams
    )
    return msgspec.structs.replace(config, proxy=msgspec.structs.replace(config.proxy, upstreams=upstreams))


async def test_reload_starts_added_stops_removed_and_restarts_changed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    alpha, beta, gamma, delta = _servers("alpha", "beta", "gamma", "delta")
    config = make_config("alpha", "beta", "gamma")
    async with running_daemon(config, alpha, beta, gamma, delta) as (gateway, attach):
        client = await attach()
        await client.initialize()
        in_gamma = await client.start("tools/call", {"name": "gamma__hang"})
        await _wait(lambda: gateway.upstreams["gamma"].in_flight == 1)
        new = _changed(make_config("alpha", "beta", "delta"), "beta", request_timeout=30)
        outcome = await gateway.reload(new)
        assert outcome == {
            "added": ["delta"],
            "removed": ["gamma"],
            "changed": ["beta"],
            "rules": [],
            "profiles": [],
            "plugins": [],
            "unchanged": ["alpha"],
        }
        error = (await client.response(in_gamma))["error"]
        assert error["code"] == -32003 and "'gamma'" in error["message"]
        await _wait(
            lambda: gateway.router.tool_count("delta") == 2 and gateway.router.tool_count("beta") == 2
        )
        tools = (await client.result("tools/list"))["tools"]
        assert sorted(t["name"] for t in tools) == [
            "alpha__echo",
            "alpha__hang",
            "beta__echo",
            "beta__hang",
            "delta__echo",
            "delta__hang",
        ]
        assert (len(alpha.sessions), len(beta.sessions), len(delta.sessions)) == (1, 2, 1)
        assert gateway.upstream_supervisor.names() == ["alpha", "beta", "delta"]
        assert gateway.upstreams["beta"].config.request_timeout == 30
        error = (await client.request("tools/call", {"name": "gamma__echo"}))["error"]
        assert error["code"] == -32602 and "known servers: alpha, beta, delta" in error["message"]
        assert client.notified("notifications/tools/list_changed")
        result = await client.result("tools/call", {"name": "delta__echo", "arguments": {"text": "new"}})
        assert result["content"][0]["text"] == "new"


async def test_reload_cannot_switch_between_single_and_multi_server_mode(
    autojump_clock: trio.testing.MockClock,
) -> None:
    alpha, beta = _servers("alpha", "beta")
    async with running_daemon(make_config("alpha", "beta"), alpha, beta) as (gateway, _):
        with pytest.raises(RuntimeError, match="carry their prefix"):
            await gateway.reload(make_config("alpha"))
        assert gateway.upstream_supervisor.names() == ["alpha", "beta"]


async def test_reload_cannot_move_the_shared_rate_limits(autojump_clock: trio.testing.MockClock) -> None:
    """Buckets in Redis and in the process cannot be swapped under running calls: down and up."""
    alpha, beta = _servers("alpha", "beta")
    config = make_config("alpha", "beta")
    async with running_daemon(config, alpha, beta) as (gateway, _):
        shared = msgspec.structs.replace(config.proxy, state=SharedStateConfig(redis="redis://127.0.0.1:1/0"))
        with pytest.raises(RuntimeError, match=r"cannot change proxy\.state"):
            await gateway.reload(msgspec.structs.replace(config, proxy=shared))
        assert gateway.config.proxy.state is None


async def test_start_timeout_reason_carries_the_last_stderr_line(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def complain(session: FakeSession) -> None:
        session.stderr_tail.append("error: API_TOKEN is not set")
        await trio.sleep_forever()

    mute = FakeServer("mute", on_initialize=complain)
    config = make_config("mute", startup_timeout=1, startup_wait=100)
    async with running_gateway(config, mute) as (gateway, _):
        await _wait(lambda: gateway.upstream_supervisor.status("mute").last_exit is not None)
        assert gateway.upstream_supervisor.status("mute").last_exit == (
            "UpstreamStartError: no answer to initialize within 1 s; stderr: error: API_TOKEN is not set"
        )


async def test_initialize_result_that_is_not_an_object_fails_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def odd_answer(session: FakeSession) -> None:
        await session.send({"jsonrpc": "2.0", "id": session.received[-1]["id"], "result": 5})
        await trio.sleep_forever()

    odd = FakeServer("odd", on_initialize=odd_answer)
    async with running_gateway(make_config("odd", startup_wait=100), odd) as (gateway, _):
        await _wait(lambda: gateway.upstream_supervisor.status("odd").last_exit is not None)
        assert "initialize returned a result that is not an object" in (
            gateway.upstream_supervisor.status("odd").last_exit or ""
        )


async def test_upstream_repeating_a_cursor_does_not_loop_forever(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Stuck(FakeServer):
        def _page(self, key: str, items: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
            return {key: items, "nextCursor": "again"}

    stuck = Stuck("stuck", tools={"echo": echo})
    async with running_gateway(make_config("stuck"), stuck) as (_, client):
        await client.initialize()
        tools = (await client.result("tools/list"))["tools"]
        assert [t["name"] for t in tools] == ["echo", "echo"]  # first page, then the cursor once
        assert len(stuck.session.requests("tools/list")) == 2


async def test_a_clean_exit_mid_request_is_reported_as_exited_not_crashed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from tests.gateway.fakes import hang

    quitter = FakeServer("quitter", tools={"hang": hang})
    config = make_config("quitter", "other", restart="transient")
    async with running_gateway(config, quitter, FakeServer("other")) as (_, client):
        await client.initialize()
        request = await client.start("tools/call", {"name": "quitter__hang"})
        await client.wait_for(lambda: bool(quitter.session.requests("tools/call")))
        quitter.session.crash(0)
        error = (await client.response(request))["error"]
        assert error["code"] == -32003 and "state: exited" in error["message"]
        assert "exited with code 0" in error["message"]
