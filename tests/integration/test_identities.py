"""Who is calling, end to end over HTTP with the SDK client in both eras.

A real OpenID provider in front of the gateway: the certified ``oidc-provider`` (node) issues
JWT access tokens for Watchgate's URL, and the official SDK client, with its
``OAuthClientProvider`` and nothing but that URL, finds the metadata, registers itself, signs its
user in and calls tools. And the small-team setup: a named static token per person. Either way
who signed in decides what it sees (``access:`` rules on its groups), and the audit log names
each user."""

from __future__ import annotations

import hashlib
import html
import re
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2 as httpx
import pytest
import trio
import yaml
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from mcp.shared.exceptions import MCPError

from tests.integration.conftest import EVERYTHING, REPO, text_of, upstream
from tests.integration.test_http_clients import _SDK_LEAVES_GENERATORS, gateway_over_http
from watchgate.bench.httpdriver import free_port

pytestmark = pytest.mark.integration

NODE = str(REPO / "node_mcp/node_modules/.bin/node")
PROVIDER = str(REPO / "node_mcp/oidc-provider.mjs")
CALLBACK = "http://127.0.0.1:1/callback"  # never opened: the browser stops at the redirect to it


@asynccontextmanager
async def openid_provider(resource: str) -> AsyncIterator[str]:
    """``oidc-provider`` on a free loopback port, issuing tokens for ``resource``; its issuer."""
    port = free_port()
    process = await trio.lowlevel.open_process(
        [NODE, PROVIDER, str(port), resource], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert process.stdout is not None
        with trio.fail_after(30):
            seen = b""
            while b"ready " not in seen:
                chunk = await process.stdout.receive_some()
                assert chunk, f"oidc-provider exited before it listened ({process.poll()})"
                seen += chunk
        yield f"http://127.0.0.1:{port}"
    finally:
        with trio.CancelScope(shield=True):
            process.terminate()
            await process.wait()


class Browser:
    """A person at the provider's sign-in pages: follows redirects, signs in as ``user`` with any
    password, consents, and stops where the provider sends the browser back to the client."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.redirect: str | None = None

    async def visit(self, url: str) -> None:
        async with httpx.AsyncClient() as web:
            for _ in range(12):
                if url.startswith(CALLBACK):
                    self.redirect = url
                    return
                page = await web.get(url)
                if page.is_redirect:
                    url = urljoin(url, page.headers["location"])
                    continue
                assert page.status_code == 200, page.text
                action = urljoin(url, html.unescape(re.search(r'<form[^>]*action="([^"]+)"', page.text)[1]))  # type: ignore[index]
                prompt = re.search(r'name="prompt" value="(\w+)"', page.text)[1]  # type: ignore[index]
                form = (
                    {"prompt": prompt, "login": self.user, "password": "any"}
                    if prompt == "login"
                    else {"prompt": prompt}
                )
                answer = await web.post(action, data=form)
                assert answer.is_redirect, answer.text
                url = urljoin(action, answer.headers["location"])
        raise AssertionError(f"the sign-in never came back to the client (last at {url})")

    async def callback(self) -> AuthorizationCodeResult:
        assert self.redirect is not None, "the browser was never sent to sign in"
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.redirect).query).items()}
        assert "code" in query, f"the provider refused: {query}"
        return AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))


class Memory:
    """The SDK's token storage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


@asynccontextmanager
async def signed_in_client(url: str, user: str, mode: str, memory: Memory) -> AsyncIterator[Client]:
    """The SDK's client with its OAuth provider, given only the gateway's URL."""
    browser = Browser(user)
    auth = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name=f"test client of {user}",
            redirect_uris=[CALLBACK],  # type: ignore[list-item]
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
            scope="mcp",
        ),
        storage=memory,
        redirect_handler=browser.visit,
        callback_handler=browser.callback,
    )
    async with httpx.AsyncClient(auth=auth, timeout=30) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode=mode) as client:  # type: ignore[arg-type]
            yield client


@pytest.fixture
def oidc_config(tmp_path: Path) -> Callable[[str], Path]:
    def write(issuer: str) -> Path:
        path = tmp_path / "watchgate.yaml"
        config: dict[str, Any] = {
            "proxy": {
                "upstreams": [upstream("everything", EVERYTHING, prefix="always")],
                "http": {"auth": {"oauth": {"issuer": issuer, "scopes": ["mcp"]}}},
            },
            "access": [
                {"match": {"groups": ["engineering"]}},
                {"match": {"groups": ["support"]}, "tools": {"allow": ["everything__echo"]}},
            ],
            "audit": {"path": str(tmp_path / "audit.jsonl")},
        }
        path.write_text(yaml.safe_dump(config))
        return path

    return write


@_SDK_LEAVES_GENERATORS
@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_the_sdk_signs_in_at_a_real_provider_and_each_user_gets_its_rights(
    oidc_config: Callable[[str], Path], tmp_path: Path, mode: str
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    async with openid_provider(url) as issuer:
        config = oidc_config(issuer)
        async with gateway_over_http(config, port, tmp_path / "gateway.log") as served:
            assert served == url
            seen: dict[str, set[str]] = {}
            for user in ("alice", "bob"):
                memory = Memory()
                async with signed_in_client(url, user, mode, memory) as client:
                    seen[user] = {tool.name for tool in (await client.list_tools()).tools}
                    echoed = await client.call_tool("everything__echo", {"message": f"hi from {user}"})
                    assert f"hi from {user}" in text_of(echoed)
                    if user == "bob":
                        with pytest.raises(MCPError, match="unknown tool 'everything__get-sum'"):
                            await client.call_tool("everything__get-sum", {"a": 1, "b": 2})
                assert memory.tokens is not None and memory.client is not None  # it did sign in
    assert "everything__get-sum" in seen["alice"] and len(seen["alice"]) > 5
    assert seen["bob"] == {"everything__echo"}
    records = [yaml.safe_load(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    named = {(r.get("principal"), tuple(r.get("groups") or ())) for r in records if r.get("principal")}
    assert ("alice", ("engineering",)) in named and ("bob", ("support",)) in named
    assert memory.tokens.access_token not in (tmp_path / "audit.jsonl").read_text()
    assert memory.tokens.access_token not in (tmp_path / "gateway.log").read_text()


@_SDK_LEAVES_GENERATORS
@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_static_tokens_two_users_two_groups_each_its_own_tools(tmp_path: Path, mode: str) -> None:
    """The small-team setup: a named token per person (only digests in the config)."""
    tokens = {"ana": "ana-token-0123456789", "bob": "bob-token-0123456789"}
    config = tmp_path / "watchgate.yaml"
    auth = {
        "tokens": [
            {
                "name": "ana",
                "sha256": hashlib.sha256(tokens["ana"].encode()).hexdigest(),
                "groups": ["engineering"],
            },
            {
                "name": "bob",
                "sha256": hashlib.sha256(tokens["bob"].encode()).hexdigest(),
                "groups": ["support"],
            },
        ]
    }
    config.write_text(
        yaml.safe_dump(
            {
                "proxy": {
                    "upstreams": [upstream("everything", EVERYTHING, prefix="always")],
                    "http": {"auth": auth},
                },
                "access": [
                    {"match": {"groups": ["engineering"]}, "tools": {"deny": ["everything__echo"]}},
                    {"match": {"groups": ["support"]}, "tools": {"allow": ["everything__echo"]}},
                ],
            }
        )
    )
    port = free_port()
    seen: dict[str, set[str]] = {}
    async with gateway_over_http(config, port, tmp_path / "gateway.log") as url:
        for user, token in tokens.items():
            async with (
                httpx.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=30) as http,
                Client(streamable_http_client(url, http_client=http), mode=mode) as client,  # type: ignore[arg-type]
            ):
                seen[user] = {tool.name for tool in (await client.list_tools()).tools}
                other = "everything__get-sum" if user == "bob" else "everything__echo"
                with pytest.raises(MCPError, match=f"unknown tool '{other}'"):
                    await client.call_tool(other, {"a": 1, "b": 2, "message": "x"})
    assert "everything__get-sum" in seen["ana"] and "everything__echo" not in seen["ana"]
    assert seen["bob"] == {"everything__echo"}
