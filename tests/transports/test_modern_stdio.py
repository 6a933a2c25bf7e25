"""``protocol: modern`` on stdio: the project's conformance fixture (the official SDK's server)
spoken to in the 2026-07-28 era through the upstream seam, as the upstream actor would."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from tests.transports.test_modern import INIT
from watchgate.config.schema import UpstreamConfig
from watchgate.transports.modern_stdio import ModernStdioConnection, modern_stdio_connector

FIXTURE = Path(__file__).resolve().parents[1] / "servers" / "conformance_fixture.py"
pytestmark = pytest.mark.integration


def _config(*command: str) -> UpstreamConfig:
    return UpstreamConfig(
        name="fx", command=command or (sys.executable, str(FIXTURE), "stdio"), protocol="modern"
    )


class Peer:
    """The actor's side of the seam: what it sends, and what arrives (kept when it is not the
    answer awaited, for a later look)."""

    def __init__(self, connection: ModernStdioConnection) -> None:
        self.connection = connection
        self.before: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send([msgspec.json.encode({"jsonrpc": "2.0", **message}) + b"\n"])

    async def next(self) -> dict[str, Any]:
        burst = await self.connection.receive().receive()
        decoded: dict[str, Any] = json.loads(burst[0])
        return decoded

    async def answer(self, request_id: int) -> dict[str, Any]:
        while True:
            message = await self.next()
            if message.get("id") == request_id and "method" not in message:
                return message
            self.before.append(message)

    async def request(self, request_id: int, method: str, params: Any = None) -> dict[str, Any]:
        message: dict[str, Any] = {"id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        return await self.answer(request_id)


async def test_a_stdio_server_in_the_modern_era_through_the_seam() -> None:
    with trio.fail_after(60):
        async with modern_stdio_connector(_config()) as connection:
            peer = Peer(connection)
            await connection.send([INIT + b"\n"])
            initialized = await peer.answer(0)
            assert initialized["result"]["protocolVersion"] == "2026-07-28"
            assert initialized["result"]["serverInfo"]["name"] == "watchgate-conformance-fixture"
            await peer.send({"method": "notifications/initialized"})
            await peer.send({"id": 1, "method": "ping"})
            assert "result" in await peer.answer(1)  # the probe reaches the server

            names = [t["name"] for t in (await peer.request(2, "tools/list"))["result"]["tools"]]
            assert "test_input_required_result_elicitation" in names

            # a 2026-07-28 client's call: the server's input_required as it came
            connection.relay_input(3, {"elicitation": {}})
            call = {"name": "test_input_required_result_elicitation", "arguments": {}}
            asked = (await peer.request(3, "tools/call", call))["result"]
            assert asked["resultType"] == "input_required" and "user_name" in asked["inputRequests"]

            # an older client's: the question as a request of the gateway's, then the retry
            await peer.send({"id": 4, "method": "tools/call", "params": call})
            question = await peer.next()
            assert question["method"] == "elicitation/create"
            reply = {"action": "accept", "content": {"name": "Ada"}}
            await peer.send({"id": question["id"], "result": reply})
            done = await peer.answer(4)
            assert done["result"]["content"][0]["text"] == "Hello, Ada!"

            # a list change outside any request, on the subscriptions/listen stream
            trigger = {"name": "test_trigger_tool_change", "arguments": {}}
            assert "result" in await peer.request(5, "tools/call", trigger)
            while not any(m.get("method") == "notifications/tools/list_changed" for m in peer.before):
                peer.before.append(await peer.next())
            changed = next(m for m in peer.before if m.get("method") == "notifications/tools/list_changed")
            assert "io.modelcontextprotocol/subscriptionId" not in json.dumps(changed)

            subscribe = {"uri": "test://static-text"}
            answer = await peer.request(6, "resources/subscribe", subscribe)
            assert "result" in answer or answer["error"]["code"] == -32601  # answered here either way
            assert (await peer.request(7, "logging/setLevel", {"level": "info"}))["result"] == {}


async def test_a_server_that_does_not_speak_the_era_fails_the_start_saying_so() -> None:
    legacy_only = [sys.executable, "-c", LEGACY_ONLY]
    with trio.fail_after(30):
        async with modern_stdio_connector(_config(*legacy_only)) as connection:
            await connection.send([INIT + b"\n"])
            refused = await Peer(connection).next()
    assert refused["id"] == 0
    assert "does not speak MCP 2026-07-28 (protocol: modern)" in refused["error"]["message"]
    assert "Method not found" in refused["error"]["message"]


LEGACY_ONLY = """
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if "id" in m:
        print(json.dumps({"jsonrpc": "2.0", "id": m["id"], "error": {"code": -32601, "message": "Method not found"}}), flush=True)
"""
