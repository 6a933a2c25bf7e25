"""``protocol: auto`` on stdio: the gateway's process of a server speaks the initialize era, and a
2026-07-28 client's request starts a second process spoken to in that era, as the client would
directly; a server that does not speak it is bridged through the first; a second process that
exits has its calls answered, and the next such request starts it again."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from tests.transports.test_modern import INIT
from watchgate.config.schema import UpstreamConfig
from watchgate.transports.dual_stdio import DualStdioConnection, dual_stdio_connector

HERE = Path(__file__).resolve().parents[1] / "servers"
FIXTURE = (sys.executable, str(HERE / "conformance_fixture.py"), "stdio")
LEGACY_ONLY = (sys.executable, str(HERE / "echo_server.py"))
pytestmark = pytest.mark.integration


class Actor:
    """The actor's side of the seam: the first process's messages and the second's, in one list."""

    def __init__(self, connection: DualStdioConnection, nursery: trio.Nursery) -> None:
        self.connection = connection
        self.seen: list[dict[str, Any]] = []
        self._changed = trio.Event()
        nursery.start_soon(self._read_first)
        nursery.start_soon(connection.pump_side, self._take)

    async def _read_first(self) -> None:
        async for burst in self.connection.receive():
            await self._take(burst)

    async def _take(self, burst: list[bytes]) -> None:
        self.seen.extend(json.loads(line) for line in burst)
        self._changed.set()
        self._changed = trio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send([msgspec.json.encode({"jsonrpc": "2.0", **message}) + b"\n"])

    async def answer(self, request_id: Any) -> dict[str, Any]:
        while True:
            for message in self.seen:
                if message.get("id") == request_id and "method" not in message:
                    return message
            await self._changed.wait()

    async def open(self) -> None:
        await self.connection.send([INIT + b"\n"])
        assert "result" in await self.answer(0)
        await self.send({"method": "notifications/initialized"})


@asynccontextmanager
async def opened(config: UpstreamConfig) -> AsyncIterator[tuple[DualStdioConnection, Actor]]:
    """The connection, handshake done, with the actor's side reading both processes."""
    with trio.fail_after(60):
        async with dual_stdio_connector(config) as connection, trio.open_nursery() as nursery:
            actor = Actor(connection, nursery)
            await actor.open()
            yield connection, actor
            nursery.cancel_scope.cancel()


async def test_a_modern_clients_call_goes_to_a_second_process_of_its_era(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "watchgate")
    config = UpstreamConfig(name="fx", command=FIXTURE)
    async with opened(config) as (connection, actor):
        assert connection.describe().also_speaks == ()
        call = {"name": "test_input_required_result_elicitation", "arguments": {}}
        await actor.send({"id": 1, "method": "tools/call", "params": call})  # a legacy client's
        legacy = await actor.answer(1)
        assert "input_required" not in json.dumps(legacy)  # the first process cannot ask that way
        connection.relay_input(2, {"elicitation": {}})  # a 2026-07-28 client's
        await actor.send({"id": 2, "method": "tools/call", "params": call})
        modern = (await actor.answer(2))["result"]
        assert modern["resultType"] == "input_required" and "user_name" in modern["inputRequests"]
        assert connection.describe().also_speaks == ("2026-07-28",)
        assert connection.fast_path is not None  # nothing of the second era in flight: the fast path again

        # the second process exits under a call: the call is answered, saying so
        connection.relay_input(3, {})
        await actor.send({"id": 3, "method": "tools/call", "params": {"name": "test_wait", "arguments": {}}})
        side = connection._side
        assert side is not None and side.pid is not None
        os.kill(side.pid, signal.SIGKILL)
        ended = await actor.answer(3)
        assert "process of fx exited" in ended["error"]["message"]
        connection.relay_input(4, {"elicitation": {}})  # and the next one starts it again
        await actor.send({"id": 4, "method": "tools/call", "params": call})
        assert (await actor.answer(4))["result"]["resultType"] == "input_required"
    started = [r for r in caplog.records if "second process" in r.getMessage()]
    assert len(started) == 2


async def test_a_server_of_one_era_bridges_its_modern_clients_through_the_first(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "watchgate")
    config = UpstreamConfig(name="echo", command=LEGACY_ONLY)
    async with opened(config) as (connection, actor):
        for request_id in (1, 2):
            connection.relay_input(request_id, {})
            echo = {"name": "echo", "arguments": {"text": f"hi {request_id}"}}
            await actor.send({"id": request_id, "method": "tools/call", "params": echo})
            answered = await actor.answer(request_id)
            assert answered["result"]["content"][0]["text"] == f"hi {request_id}"
        assert connection.describe().also_speaks == ()
    said = [r.getMessage() for r in caplog.records if "opened no 2026-07-28 process" in r.getMessage()]
    assert len(said) == 1  # tried once, not per call
    assert "server/discover failed: method not found" in said[0] and "protocol: modern" not in said[0]


_SILENT_ON_DISCOVER = """
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("method") == "initialize":
        result = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": "s", "version": "1"}}
    elif msg.get("method") == "tools/call":
        result = {"content": [{"type": "text", "text": msg["params"]["arguments"]["text"]}]}
    else:
        continue  # server/discover among them: never answered
    print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}), flush=True)
"""


async def test_a_second_process_that_does_not_answer_holds_up_nobody_else(tmp_path: Path) -> None:
    """While the second process is given its chance (up to ``startup_timeout``), the first
    process's clients go on; the 2026-07-28 call waiting for it is then bridged, not lost."""
    script = tmp_path / "silent.py"
    script.write_text(_SILENT_ON_DISCOVER)
    config = UpstreamConfig(name="silent", command=(sys.executable, str(script)), startup_timeout=3)
    async with opened(config) as (connection, actor):
        connection.relay_input(1, {})
        await actor.send(
            {"id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "new"}}}
        )
        await actor.send(
            {"id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "old"}}}
        )
        assert (await actor.answer(2))["result"]["content"][0]["text"] == "old"
        assert not any(m.get("id") == 1 for m in actor.seen)  # the older client went first
        assert (await actor.answer(1))["result"]["content"][0]["text"] == "new"  # bridged
