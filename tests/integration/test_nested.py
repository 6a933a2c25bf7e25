"""A Watchgate behind a Watchgate, both over HTTP: a 2026-07-28 client reaches a legacy server's
sampling tool through both (the inner gateway's MRTR round passes through the outer untouched:
its requestState is the inner process's to judge), and a 2026-07-28 server's own MRTR tool."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml
from mcp import Client, ClientSession, types
from mcp.client.streamable_http import streamable_http_client

from tests.conformance.test_server_scenarios import FIXTURE, serving
from tests.integration.conftest import EVERYTHING, progress_and_sampling, text_of, upstream
from tests.integration.test_http_clients import _SDK_LEAVES_GENERATORS, gateway_over_http
from watchgate.bench.httpdriver import free_port

pytestmark = pytest.mark.integration


def _write(path: Path, *upstreams: dict[str, Any]) -> Path:
    document = {"proxy": {"startup_wait": 20, "upstreams": list(upstreams)}, "audit": {"enabled": False}}
    path.write_text(yaml.safe_dump(document))
    return path


async def _forty_two(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text="forty-two"), model="test-model"
    )


@asynccontextmanager
async def chain(tmp_path: Path, server: dict[str, Any]) -> AsyncIterator[str]:
    """``server`` behind a Watchgate behind a Watchgate, both ``run --http``: the outer URL."""
    inner = _write(tmp_path / "inner.yaml", server)
    async with gateway_over_http(inner, free_port(), tmp_path / "inner.log") as inner_url:
        outer = _write(tmp_path / "outer.yaml", {"name": "inner", "transport": "http", "url": inner_url})
        async with gateway_over_http(outer, free_port(), tmp_path / "outer.log") as outer_url:
            yield outer_url


@_SDK_LEAVES_GENERATORS
async def test_a_modern_clients_sampling_through_two_gateways(tmp_path: Path) -> None:
    with trio.fail_after(120):
        async with (
            chain(tmp_path, upstream("everything", EVERYTHING)) as url,
            Client(url, mode="2026-07-28", sampling_callback=_forty_two) as client,
        ):
            sampled = await client.call_tool("trigger-sampling-request", {"prompt": "?", "maxTokens": 5})
            assert "forty-two" in text_of(sampled)


@_SDK_LEAVES_GENERATORS
async def test_a_modern_servers_own_round_through_two_gateways(tmp_path: Path) -> None:
    port = free_port()
    fixture = [sys.executable, str(FIXTURE), "http", str(port)]
    with trio.fail_after(120):
        async with (
            serving(fixture, port, tmp_path / "fixture.log") as fixture_url,
            chain(tmp_path, {"name": "fx", "transport": "http", "url": fixture_url}) as url,
            Client(url, mode="2026-07-28", sampling_callback=_forty_two) as client,
        ):
            answered = await client.call_tool("test_input_required_result_sampling", {})
            assert "forty-two" in text_of(answered), answered


@_SDK_LEAVES_GENERATORS
async def test_a_legacy_clients_sampling_and_progress_through_two_gateways(tmp_path: Path) -> None:
    """A 2025-11-25 client: the outer gateway asks it the inner round's question in its own era
    and retries with the answer; progress comes through both."""
    with trio.fail_after(120):
        async with (
            chain(tmp_path, upstream("everything", EVERYTHING)) as url,
            streamable_http_client(url) as (read, write),
            ClientSession(read, write, sampling_callback=_forty_two) as session,
        ):
            await session.initialize()
            progress, sampled = await progress_and_sampling(session, "")
            assert progress == [1, 2, 3] and "forty-two" in sampled
