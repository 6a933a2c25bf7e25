"""Rate limits shared by replicas (``proxy.state.redis``), against a real ``redis-server`` the
test starts on loopback: two gateways' access rules count one caller's calls in one bucket, the
bucket frees up on the callers' clock, and a Redis that stops answering is noticed once and
counted locally rather than taking the gateway down."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import yaml

from watchgate.bench.httpdriver import free_port
from watchgate.config import parse_config
from watchgate.errors import JsonRpcError
from watchgate.gateway.router.access import Access
from watchgate.gateway.router.shared import SharedBuckets
from watchgate.protocol.identity import Principal

ANA = Principal(name="ana", groups=("dev",), proven_by="token")
REDIS = shutil.which("redis-server") or shutil.which("valkey-server")
pytestmark = pytest.mark.skipif(
    REDIS is None, reason="needs redis-server or valkey-server (.ci/run installs it)"
)


@asynccontextmanager
async def redis_server() -> AsyncIterator[str]:
    """A throwaway Redis on a free loopback port, nothing saved; its URL once it answers PING."""
    assert REDIS is not None
    port = free_port()
    process = await trio.lowlevel.open_process(
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        with trio.fail_after(10):
            while True:
                try:
                    stream = await trio.open_tcp_stream("127.0.0.1", port)
                except OSError:
                    await trio.sleep(0.02)
                    continue
                async with stream:
                    await stream.send_all(b"PING\r\n")
                    if (await stream.receive_some()).startswith(b"+PONG"):
                        break
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        with trio.CancelScope(shield=True):
            await process.wait()


def _rules(calls: int) -> Access:
    config = parse_config(
        yaml.safe_dump(
            {
                "proxy": {"upstreams": [{"name": "fs", "command": ["fake"]}]},
                "access": [{"match": {}, "rate": {"calls": calls, "per": 60}}],
            }
        )
    )
    assert config.access is not None
    return Access(config.access, {})


async def test_two_replicas_count_one_callers_calls_in_one_bucket() -> None:
    now = [1_000_000.0]
    async with redis_server() as url:
        replicas = [_rules(calls=2), _rules(calls=2)]
        for replica in replicas:
            replica.shared = SharedBuckets(url, clock=lambda: now[0])
        try:
            await replicas[0].admit(ANA, "fs__read", 0.0)
            await replicas[1].admit(ANA, "fs__read", 0.0)
            with pytest.raises(JsonRpcError) as limited:
                await replicas[0].admit(ANA, "fs__read", 0.0)  # each replica alone would let it through
            assert limited.value.code == -32012 and 29 < limited.value.data["retryAfter"] <= 30
            now[0] += 30  # one call's worth comes back, on the callers' clock
            await replicas[1].admit(ANA, "fs__read", 0.0)
            with pytest.raises(JsonRpcError):
                await replicas[0].admit(ANA, "fs__read", 0.0)
        finally:
            for replica in replicas:
                assert replica.shared is not None
                await replica.shared.aclose()


async def test_a_redis_that_stops_answering_is_counted_locally_and_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with redis_server() as url:
        replica = _rules(calls=2)
        replica.shared = SharedBuckets(url.replace("/0", "/1"))
        await replica.admit(ANA, "fs__read", 0.0)
    # the server is gone: the calls are counted in this process, against the same limit
    await replica.admit(ANA, "fs__read", 0.0)
    await replica.admit(ANA, "fs__read", 0.0)
    with pytest.raises(JsonRpcError, match="2 calls per 60 s"):
        await replica.admit(ANA, "fs__read", 0.0)
    said = [r.getMessage() for r in caplog.records if "proxy.state.redis" in r.getMessage()]
    assert len(said) == 1 and "127.0.0.1" not in said[0]
    await replica.shared.aclose()  # type: ignore[union-attr]
