"""OAuth 2.1 toward a remote server: where the tokens live, and a connection without a person
that meets a server wanting a login (the full flows: tests/conformance, the auth/* scenarios)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio

from tests.transports.test_http import INIT, URL
from watchgate.config import parse_config
from watchgate.errors import ConfigError
from watchgate.transports.http import HttpConnection
from watchgate.transports.oauth import TokenFile, gateway_auth


def _oauth_config(extra: str = "") -> Any:
    text = f"proxy:\n  upstream:\n    name: hosted\n    transport: http\n    url: {URL}\n    auth: {{type: oauth{extra}}}\n"
    return parse_config(text).proxy.upstreams[0]


async def test_tokens_live_in_a_private_file_one_entry_per_server(tmp_path: Path) -> None:
    from mcp.shared.auth import OAuthToken

    path = tmp_path / "watchgate" / "oauth-tokens.json"
    one, other = TokenFile("https://a.example/mcp", path), TokenFile("https://b.example/mcp", path)
    await one.set_tokens(OAuthToken(access_token="secret-a", expires_in=60, refresh_token="r"))
    await other.set_tokens(OAuthToken(access_token="secret-b"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert (await one.get_tokens()).access_token == "secret-a"  # type: ignore[union-attr]
    assert one.entry()["expires_at"] > 0 and "expires_at" in other.entry()
    one.want("mcp:basic mcp:write")
    one.start_over()  # a new login: the tokens go, what the server wanted stays
    assert await one.get_tokens() is None and one.wanted() == "mcp:basic mcp:write"
    assert other.forget() and not other.forget()
    assert set(json.loads(path.read_text())) == {"https://a.example/mcp"}


async def test_an_existing_open_folder_is_made_private_and_no_planted_link_is_followed(
    tmp_path: Path,
) -> None:
    from mcp.shared.auth import OAuthToken

    folder = tmp_path / "watchgate"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)  # as `mkdir ~/.config/watchgate` by hand, or another tool, leaves it
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (folder / "oauth-tokens.tmp").symlink_to(victim)
    await TokenFile("https://a.example/mcp", folder / "oauth-tokens.json").set_tokens(
        OAuthToken(access_token="t")
    )
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert victim.read_text() == "precious"


def _authorization_server(request: httpx2.Request) -> httpx2.Response:
    """A server that wants a login, with everything the flow discovers before a person is needed."""
    path = request.url.path
    if path == "/mcp":
        metadata = "http://127.0.0.1:9/.well-known/oauth-protected-resource/mcp"
        return httpx2.Response(401, headers={"www-authenticate": f'Bearer resource_metadata="{metadata}"'})
    if path.startswith("/.well-known/oauth-protected-resource"):
        return httpx2.Response(200, json={"resource": URL, "authorization_servers": ["http://127.0.0.1:9"]})
    if path.startswith("/.well-known/oauth-authorization-server"):
        endpoints = {e: f"http://127.0.0.1:9/{e}" for e in ("authorize", "token", "register")}
        return httpx2.Response(
            200,
            json={
                "issuer": "http://127.0.0.1:9",
                "authorization_endpoint": endpoints["authorize"],
                "token_endpoint": endpoints["token"],
                "registration_endpoint": endpoints["register"],
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
            },
        )
    if path == "/register":
        body = json.loads(request.content)
        return httpx2.Response(201, json={**body, "client_id": "registered"})
    return httpx2.Response(404)


async def test_a_connection_without_a_person_ends_saying_which_login_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    config = _oauth_config(", scopes: [mcp:read]")
    auth = gateway_auth(config)
    async with (
        httpx2.AsyncClient(transport=httpx2.MockTransport(_authorization_server), auth=auth) as client,
        trio.open_nursery() as nursery,
    ):
        connection = HttpConnection(config, client, nursery)
        await connection.send([INIT + b"\n"])
        with trio.fail_after(5):
            await connection.wait()
        nursery.cancel_scope.cancel()
    assert str(connection.ending()) == "needs login: run `watchgate auth login hosted`"
    assert connection.needs_login
    stored = TokenFile(URL).entry()
    assert stored["client"]["client_id"] == "registered"  # registered, no tokens: a person is needed
    assert "tokens" not in stored


def test_oauth_and_bearer_keys_do_not_mix() -> None:
    with pytest.raises(ConfigError, match="an oauth login has no token_env or token_file"):
        _oauth_config(", token_env: T")
    with pytest.raises(ConfigError, match="are for type: oauth"):
        parse_config(
            f"proxy:\n  upstream:\n    transport: http\n    url: {URL}\n    auth: {{token_env: T, scopes: [x]}}\n"
        )
    assert _oauth_config(", client_id: pre, scopes: [a, b]").auth.scopes == ("a", "b")


async def test_a_stored_token_about_to_expire_is_refreshed_before_the_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    storage = TokenFile(URL)
    await storage.set_tokens(OAuthToken(access_token="old", expires_in=30, refresh_token="keep-me"))
    await storage.set_client_info(OAuthClientInformationFull(client_id="registered", redirect_uris=None))
    seen: list[tuple[str, str | None]] = []

    def server(request: httpx2.Request) -> httpx2.Response:
        seen.append((request.url.path, request.headers.get("authorization")))
        if request.url.path == "/token":
            assert b"grant_type=refresh_token" in request.content and b"keep-me" in request.content
            return httpx2.Response(
                200, json={"access_token": "new", "token_type": "bearer", "expires_in": 3600}
            )
        return httpx2.Response(202)

    auth = gateway_auth(_oauth_config())
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(server), auth=auth) as client:
        await client.post(URL, content=b"{}")
    assert seen == [("/token", None), ("/mcp", "Bearer new")]  # refreshed first, not after a 401
    assert (await storage.get_tokens()).access_token == "new"  # type: ignore[union-attr]
