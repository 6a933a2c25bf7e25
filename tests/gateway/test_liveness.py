"""An upstream that is alive but no longer answers (a deadlock, a stopped process) is found by
`ping` while it is idle and restarted by its supervisor, like a crash (design.md §5)."""

from __future__ import annotations

import trio
import trio.testing

from tests.gateway.fakes import FakeServer, echo, hang, make_config, running_gateway


def _status(gateway: object, name: str) -> object:
    statuses = gateway.upstream_supervisor.statuses()  # type: ignore[attr-defined]
    return next(s for s in statuses if s.name == name)


async def test_a_server_that_stops_answering_ping_is_restarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stuck = FakeServer("stuck", tools={"echo": echo}, silent_methods=("ping",))
    config = make_config("stuck", ping_interval=30, ping_timeout=5)
    async with running_gateway(config, stuck) as (gateway, client):
        await client.initialize()
        started = trio.current_time()
        while len(stuck.sessions) < 2:
            await trio.sleep(1)
        assert trio.current_time() - started < 30 + 5 + 5  # one interval, the timeout, the backoff
        assert stuck.sessions[0].methods().count("ping") == 1
        assert "did not answer ping within 5 s" in (_status(gateway, "stuck").last_exit or "")
        assert (await client.result("tools/call", {"name": "echo", "arguments": {"text": "ok"}}))["content"][
            0
        ]["text"] == "ok"


async def test_a_server_that_answers_ping_even_with_an_error_stays_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fine = FakeServer("fine", tools={"echo": echo})
    grumpy = FakeServer("grumpy", tools={"echo": echo}, fail_methods=("ping",))
    config = make_config("fine", "grumpy", ping_interval=30, ping_timeout=5)
    async with running_gateway(config, fine, grumpy) as (_, client):
        await client.initialize()
        await trio.sleep(100)
        for server in (fine, grumpy):
            assert len(server.sessions) == 1
            assert server.session.methods().count("ping") == 3


async def test_a_busy_server_is_not_pinged(autojump_clock: trio.testing.MockClock) -> None:
    """A long call may block a server that handles one request at a time: no ping while a
    client's request is in flight (request_timeout covers a server that hangs then)."""
    busy = FakeServer("busy", tools={"hang": hang}, silent_methods=("ping",))
    config = make_config("busy", ping_interval=30, ping_timeout=5, request_timeout=1000)
    async with running_gateway(config, busy) as (_, client):
        await client.initialize()
        await client.start("tools/call", {"name": "hang"})
        await trio.sleep(200)
        assert len(busy.sessions) == 1 and "ping" not in busy.session.methods()


async def test_ping_interval_zero_switches_the_probe_off(autojump_clock: trio.testing.MockClock) -> None:
    mute = FakeServer("mute", tools={"echo": echo}, silent_methods=("ping",))
    async with running_gateway(make_config("mute", ping_interval=0), mute) as (_, client):
        await client.initialize()
        await trio.sleep(500)
        assert len(mute.sessions) == 1 and "ping" not in mute.session.methods()


async def test_a_server_that_hangs_while_clients_keep_calling_is_restarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Busy all the time, so never pinged: consecutive request timeouts reveal it (design.md §12)."""
    hung = FakeServer("hung", tools={"hang": hang, "echo": echo}, silent_methods=("ping",))
    config = make_config("hung", ping_interval=30, ping_timeout=5, request_timeout=10, max_timeouts=3)
    async with running_gateway(config, hung) as (gateway, client):
        await client.initialize()
        for _ in range(3):
            error = (await client.request("tools/call", {"name": "hang"}))["error"]
            assert error["code"] == -32001
        await client.wait_for(lambda: len(hung.sessions) == 2)
        assert "3 requests in a row timed out (10 s)" in (_status(gateway, "hung").last_exit or "")
        result = await client.result("tools/call", {"name": "echo", "arguments": {"text": "back"}})
        assert result["content"][0]["text"] == "back"


async def test_an_answer_between_timeouts_resets_the_count(autojump_clock: trio.testing.MockClock) -> None:
    slowish = FakeServer("slowish", tools={"hang": hang, "echo": echo})
    config = make_config("slowish", request_timeout=10, max_timeouts=2)
    async with running_gateway(config, slowish) as (_, client):
        await client.initialize()
        for _ in range(3):
            assert (await client.request("tools/call", {"name": "hang"}))["error"]["code"] == -32001
            await client.result("tools/call", {"name": "echo", "arguments": {}})
        assert len(slowish.sessions) == 1
