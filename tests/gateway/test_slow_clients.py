"""A client that stops reading affects only its own session (design.md §12): its output
queue is bounded, it is disconnected when the queue stays full, and nobody else waits on it."""

from __future__ import annotations

import trio
import trio.testing

from tests.gateway.fakes import FakeServer, echo, make_config, running_daemon

BIG = "x" * 4000


async def test_a_client_that_never_reads_stalls_nobody_and_is_disconnected(
    autojump_clock: trio.testing.MockClock,
) -> None:
    work, other = FakeServer("work", tools={"echo": echo}), FakeServer("other", tools={"echo": echo})
    async with running_daemon(make_config("work", "other"), work, other) as (gateway, attach):
        reader = await attach()
        await reader.initialize()
        stuck = await attach(reading=False)
        for _ in range(3000):  # pipelined, and not one answer read
            await stuck.start("tools/call", {"name": "work__echo", "arguments": {"text": BIG}})
        await reader.wait_for(lambda: len(work.session.requests("tools/call")) >= 2500)

        for tool in ("work__echo", "other__echo"):  # the same server and another one
            with trio.fail_after(5):
                result = await reader.result("tools/call", {"name": tool, "arguments": {"text": "hi"}})
            assert result["content"][0]["text"] == "hi"

        with trio.fail_after(60):  # the stuck client is let go, and its calls with it
            await reader.wait_for(lambda: len(gateway.sessions()) == 1)
        await reader.wait_for(lambda: gateway.router.view("work").actor.in_flight == 0)
        with trio.fail_after(5):
            assert (await reader.result("tools/call", {"name": "work__echo", "arguments": {}}))["content"]
