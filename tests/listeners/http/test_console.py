"""The web console's HTTP side (``listeners/http/console/``): the page with its security headers
and CSRF token, the state and audit API, and actions that need that token."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx2 as httpx
import trio
import yaml

from tests.gateway.fakes import FakeServer, echo
from tests.listeners.http.conftest import serving
from watchgate.config import parse_config

CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "echo", "arguments": {"text": "x"}},
}


def _config(**extra: Any) -> Any:
    document = {"proxy": {"startup_wait": 15, "upstreams": [{"name": "fx", "command": ["fake"]}]}, **extra}
    return parse_config(yaml.safe_dump(document))


def _console(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/console"


async def test_the_page_comes_with_a_strict_policy_and_a_csrf_token() -> None:
    async with (
        serving(_config(), FakeServer("fx", tools={"echo": echo})) as (_, _, url),
        httpx.AsyncClient() as http,
    ):
        page = await http.get(_console(url))
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe" not in policy
        assert page.headers["x-frame-options"] == "DENY"
        assert re.search(r'name="csrf-token" content="[\w-]{40,}"', page.text)
        script = await http.get(_console(url) + "/static/console.js")
        assert script.status_code == 200 and "textContent" in script.text and "innerHTML" not in script.text
        assert (await http.get(_console(url) + "/static/../app.py")).status_code == 404
        assert (await http.get(_console(url) + "/nothing")).status_code == 404


async def test_state_and_actions_and_an_action_without_the_token_is_refused() -> None:
    server = FakeServer("fx", tools={"echo": echo})
    config = _config(approvals=[{"tools": ["echo"], "ask": "console"}])
    async with serving(config, server) as (_, _, url), httpx.AsyncClient() as http:
        csrf = re.search(r'content="([\w-]{40,})"', (await http.get(_console(url))).text)
        assert csrf is not None
        api = _console(url) + "/api/"
        state = (await http.get(api + "state")).json()
        assert [s["name"] for s in state["servers"]] == ["fx"] and state["approvals"] == []

        refused = await http.post(api + "servers/fx/restart", json={})
        assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
        foreign = await http.post(
            api + "servers/fx/restart",
            json={},
            headers={"x-csrf-token": csrf[1], "origin": "https://evil.example"},
        )
        assert foreign.status_code == 403
        headers = {"x-csrf-token": csrf[1]}
        restarted = await http.post(api + "servers/fx/restart", json={}, headers=headers)
        assert restarted.status_code == 200 and restarted.json()["server"] == "fx"
        assert (await http.post(api + "servers/nope/stop", json={}, headers=headers)).status_code == 404

        async with trio.open_nursery() as nursery:
            answers: list[Any] = []

            async def call() -> None:
                headers = await _session(http, url)
                answers.append(await http.post(url, json=CALL, headers=headers, timeout=30))

            nursery.start_soon(call)
            while not (held := (await http.get(api + "state")).json()["approvals"]):
                await trio.sleep(0.05)
            assert held[0]["tool"] == "echo" and held[0]["arguments"] == {"text": "x"}
            deny = await http.post(
                api + f"approvals/{held[0]['id']}/deny", json={"reason": "no"}, headers=headers
            )
            assert deny.status_code == 200
            again = await http.post(api + f"approvals/{held[0]['id']}/approve", json={}, headers=headers)
            assert again.status_code == 409
        assert "denied by anonymous at" in answers[0].text
        assert server.session is None or not server.session.requests("tools/call")


async def test_a_listener_with_tokens_asks_the_console_for_one(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret-token-for-the-console")
    token.chmod(0o600)
    async with (
        serving(_config(), FakeServer("fx"), token_file=str(token)) as (_, _, url),
        httpx.AsyncClient() as http,
    ):
        assert (await http.get(_console(url))).status_code == 200  # the page holds no data
        assert (await http.get(_console(url) + "/api/state")).status_code == 401
        bearer = {"authorization": "Bearer s3cret-token-for-the-console"}
        assert (await http.get(_console(url) + "/api/state", headers=bearer)).status_code == 200


async def test_the_state_has_each_tools_calls_of_the_last_hour() -> None:
    config = _config(plugins=[{"name": "secrets"}])  # calls pass hooks: they are counted
    async with (
        serving(config, FakeServer("fx", tools={"echo": echo})) as (_, _, url),
        httpx.AsyncClient() as http,
    ):
        await http.post(url, json=CALL, headers=await _session(http, url))
        (series,) = (await http.get(_console(url) + "/api/state")).json()["rates"]
        assert (series["server"], series["tool"], series["points"][-1]["calls"]) == ("fx", "echo", 1)


async def _session(http: httpx.AsyncClient, url: str) -> dict[str, str]:
    """A legacy MCP session on the listener: the headers its calls carry."""
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    params = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    initialize = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
    opened = await http.post(url, json=initialize, headers=headers)
    return {
        **headers,
        "mcp-session-id": opened.headers["mcp-session-id"],
        "mcp-protocol-version": "2025-11-25",
    }
