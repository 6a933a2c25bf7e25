"""Held calls every replica lists and decides (``proxy.state.redis``), against a real Redis: a
call held by one replica is listed by another, decided there, and runs where it was held."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import yaml

from tests.gateway.fakes import FakeServer, echo, running_gateway
from tests.gateway.test_shared_limits import REDIS, redis_server
from watchgate.config import parse_config

pytestmark = pytest.mark.skipif(
    REDIS is None, reason="needs redis-server (Debian's package; .ci/run installs it)"
)
CALL = {"name": "echo", "arguments": {"text": "from replica a"}}


def _config(url: str) -> Any:
    document = {
        "proxy": {
            "startup_wait": 15,
            "state": {"redis": url},
            "upstreams": [{"name": "fx", "command": ["fake"]}],
        },
        "approvals": [{"tools": ["echo"], "ask": "console", "timeout": 30}],
    }
    return parse_config(yaml.safe_dump(document))


async def _listed(gateway: Any, count: int) -> list[dict[str, Any]]:
    with trio.fail_after(10):
        while len(rows := await gateway.approvals.listing_all()) != count:
            await trio.sleep(0.05)
    return rows  # type: ignore[no-any-return]


async def test_a_call_held_by_one_replica_is_decided_from_another() -> None:
    server_a, server_b = FakeServer("fx", tools={"echo": echo}), FakeServer("fx", tools={"echo": echo})
    async with (
        redis_server() as url,
        running_gateway(_config(url), server_a, deadline=60) as (replica_a, client),
        running_gateway(_config(url), server_b, deadline=60) as (replica_b, _),
    ):
        replica_b.approvals.shared.replica = "replica-b"  # one process here: two names for two replicas
        await client.initialize()
        request_id = await client.start("tools/call", CALL)
        (seen,) = await _listed(replica_b, 1)  # a's call, as b lists it
        assert (seen["tool"], seen["arguments"], seen["replica"]) == (
            "echo",
            {"text": "from replica a"},
            replica_a.approvals.shared.replica,
        )
        assert await replica_b.approvals.decide_anywhere(seen["id"], approve=True, by="alice") is None
        with trio.fail_after(10):
            answer = await client.response(request_id)
        assert answer["result"]["content"][0]["text"] == "from replica a"
        assert len(server_a.session.requests("tools/call")) == 1  # where it was held
        await _listed(replica_b, 0)  # decided: gone from every listing
        refused = await replica_b.approvals.decide_anywhere("a9-nothing", approve=True, by="alice")
        assert refused is not None and "no call waits" in refused
