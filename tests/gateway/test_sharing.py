"""Several clients on one gateway: subscriptions are counted per client, log levels are per client."""

from __future__ import annotations

import trio
import trio.testing

from tests.gateway.fakes import FakeServer, echo, make_config, running_daemon, running_gateway


async def test_subscriptions_are_counted_per_client(autojump_clock: trio.testing.MockClock) -> None:
    docs = FakeServer("docs", capabilities={"resources": {"subscribe": True}}, resources=["file:///a"])
    other = FakeServer("other")
    async with running_daemon(make_config("docs", "other"), docs, other) as (_, attach):
        first, second = await attach(), await attach()
        for client in (first, second):
            await client.initialize()
        for client in (first, second):
            assert await client.result("resources/subscribe", {"uri": "docs+file:///a"}) == {}
        assert docs.session.methods().count("resources/subscribe") == 1

        await docs.session.notify("notifications/resources/updated", {"uri": "file:///a"})
        await first.wait_for(lambda: first.notified("notifications/resources/updated") != [])
        await second.wait_for(lambda: second.notified("notifications/resources/updated") != [])
        assert first.notified("notifications/resources/updated")[0]["params"]["uri"] == "docs+file:///a"

        assert await first.result("resources/unsubscribe", {"uri": "docs+file:///a"}) == {}
        assert docs.session.methods().count("resources/unsubscribe") == 0
        await docs.session.notify("notifications/resources/updated", {"uri": "file:///a"})
        await second.wait_for(lambda: len(second.notified("notifications/resources/updated")) == 2)
        assert len(first.notified("notifications/resources/updated")) == 1

        await second.close()  # the last subscriber leaves: the upstream is told
        await first.wait_for(lambda: docs.session.methods().count("resources/unsubscribe") == 1)


async def test_log_level_is_the_most_verbose_asked_and_filtered_per_client(
    autojump_clock: trio.testing.MockClock,
) -> None:
    chatty = FakeServer("chatty", capabilities={"tools": {}, "logging": {}})
    quiet = FakeServer("quiet")
    async with running_daemon(make_config("chatty", "quiet"), chatty, quiet) as (_, attach):
        verbose, terse = await attach(), await attach()
        for client in (verbose, terse):
            await client.initialize()
        await terse.result("logging/setLevel", {"level": "error"})
        await verbose.result("logging/setLevel", {"level": "debug"})
        await terse.wait_for(lambda: _levels(chatty) == ["error", "debug"])
        assert "logging/setLevel" not in quiet.session.methods()  # it has no logging capability

        await chatty.session.notify("notifications/message", {"level": "info", "data": "detail"})
        await chatty.session.notify("notifications/message", {"level": "error", "data": "broken"})
        await verbose.wait_for(lambda: len(verbose.notified("notifications/message")) == 2)
        await terse.wait_for(lambda: len(terse.notified("notifications/message")) == 1)
        assert terse.notified("notifications/message")[0]["params"]["data"] == "broken"

        await verbose.close()  # the verbose client leaves: the upstream goes back to the next most verbose
        await terse.wait_for(lambda: _levels(chatty) == ["error", "debug", "error"])


def _levels(server: FakeServer) -> list[str]:
    return [m["params"]["level"] for m in server.session.received if m.get("method") == "logging/setLevel"]


async def test_a_subscriber_leaving_after_its_server_was_removed_keeps_the_router_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    docs = FakeServer("docs", capabilities={"resources": {"subscribe": True}}, resources=["file:///a"])
    other = FakeServer("other")
    async with running_daemon(make_config("docs", "other"), docs, other) as (gateway, attach):
        client = await attach()
        await client.initialize()
        assert await client.result("resources/subscribe", {"uri": "docs+file:///a"}) == {}
        await gateway.reload(make_config("other", "third"))
        await client.close()
        await client.wait_for(lambda: gateway.sessions() == [])
        await trio.sleep(1)
        assert gateway.root.status("router").restarts == 0


async def test_run_mode_answers_what_was_asked_before_stdin_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    solo = FakeServer("solo", tools={"echo": echo})
    async with running_gateway(make_config("solo"), solo) as (_, client):
        await client.initialize()
        request = await client.start("tools/call", {"name": "echo", "arguments": {"text": "last words"}})
        await client.close()  # `echo request | watchgate run`: the answer must still come out
        response = await client.response(request)
        assert response["result"]["content"][0]["text"] == "last words"
