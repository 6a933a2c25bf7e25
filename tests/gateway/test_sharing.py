"""Several clients on one gateway: subscriptions are counted per client, log levels are per client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio.testing

from tests.gateway.fakes import Client, FakeServer, fake_connector, make_config
from watchgate.gateway import Gateway


@asynccontextmanager
async def gateway_with_clients(
    config: Any, *servers: FakeServer, clients: int = 2
) -> AsyncIterator[list[Client]]:
    """The daemon's shape in one process: one tree, several attached sessions."""
    gateway = Gateway(config, connector=fake_connector(*servers))
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            await nursery.start(gateway.run)
            attached = []
            for _ in range(clients):
                to_gw_send, to_gw_receive = trio.testing.memory_stream_one_way_pair()
                to_client_send, to_client_receive = trio.testing.memory_stream_one_way_pair()
                nursery.start_soon(gateway.attach_client, to_gw_receive, to_client_send)
                client = Client(to_gw_send, to_client_receive)
                nursery.start_soon(client.pump)
                await client.initialize(capabilities={})
                attached.append(client)
            yield attached
            nursery.cancel_scope.cancel()


async def test_subscriptions_are_counted_per_client(autojump_clock: trio.testing.MockClock) -> None:
    docs = FakeServer("docs", capabilities={"resources": {"subscribe": True}}, resources=["file:///a"])
    other = FakeServer("other")
    async with gateway_with_clients(make_config("docs", "other"), docs, other) as (first, second):
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
    async with gateway_with_clients(make_config("chatty", "quiet"), chatty, quiet) as (verbose, terse):
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
