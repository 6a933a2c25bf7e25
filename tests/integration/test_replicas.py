"""Two Watchgate replicas behind one name, as in the Kubernetes deployment: with
``proxy.state.redis`` (a real ``redis-server``) a caller's rate limit holds across both; the
second replica answers 429 with ``Retry-After`` for a call the first one counted."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx2 as httpx
import pytest
import yaml

from tests.gateway.test_shared_limits import REDIS, redis_server
from tests.integration.conftest import TIME, upstream
from tests.integration.test_http_clients import gateway_over_http
from tests.listeners.http.conftest import modern_headers, modern_request
from watchgate.bench.httpdriver import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(REDIS is None, reason="needs redis-server or valkey-server (.ci/run installs it)"),
]
TOKEN = "ci-token-of-the-replicas-test"


async def test_a_rate_limit_holds_across_two_replicas(tmp_path: Path) -> None:
    async with redis_server() as url:
        config = tmp_path / "watchgate.yaml"
        auth = {"tokens": [{"name": "ci", "sha256": hashlib.sha256(TOKEN.encode()).hexdigest()}]}
        config.write_text(
            yaml.safe_dump(
                {
                    "proxy": {
                        "upstreams": [upstream("time", TIME)],
                        "http": {"auth": auth},
                        "state": {"redis": url},
                    },
                    "access": [{"match": {"user": "ci"}, "rate": {"calls": 2, "per": 3600}}],
                }
            )
        )
        first, second = free_port(), free_port()
        async with (
            gateway_over_http(
                config, first, tmp_path / "1.log", "--audit-log", str(tmp_path / "1.jsonl")
            ) as one,
            gateway_over_http(
                config, second, tmp_path / "2.log", "--audit-log", str(tmp_path / "2.jsonl")
            ) as other,
            httpx.AsyncClient(headers={"authorization": f"Bearer {TOKEN}"}) as http,
        ):
            answers = []
            for number, endpoint in enumerate((one, other, one, other)):
                call = modern_request(
                    number, "tools/call", {"name": "get_current_time", "arguments": {"timezone": "UTC"}}
                )
                answers.append(
                    await http.post(
                        endpoint, json=call, headers=modern_headers("tools/call", "get_current_time")
                    )
                )
    assert [a.status_code for a in answers] == [200, 200, 429, 429]
    assert 1700 < int(answers[3].headers["retry-after"]) <= 1800  # half of the hour frees one call
    assert "rate limit: 2 calls per 3600 s for 'ci'" in answers[3].text
