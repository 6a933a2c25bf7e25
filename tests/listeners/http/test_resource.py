"""The HTTP listener as an OAuth 2.1 resource server: JWT access tokens from an issuer whose keys
are served over real HTTP (a stdlib server on loopback), every bad token refused with 401 and
nothing upstream, the metadata an MCP client needs to sign its user in."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx2 as httpx
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.gateway.fakes import FakeServer, echo
from tests.listeners.http.conftest import issuer_endpoint, modern_headers, modern_request, serving
from watchgate.config import parse_config
from watchgate.config.schema import ListenerAuth, OAuthResourceConfig
from watchgate.listeners.http.resource import ResourceServer

ISSUER = "https://idp.example"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


def issuer_keys(jwks: dict[str, Any] | None) -> Any:
    """A JWKS served on loopback (None: the endpoint answers 503, the issuer is down)."""
    return issuer_endpoint(lambda request: (200, jwks) if jwks is not None else (503, "down"), "/jwks")


def token(key: Any = KEY, kid: str = "k1", alg: str = "RS256", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": "https://gw.example/mcp", "sub": "ana", "groups": ["dev"], "exp": now + 300}
    body["scope"] = "mcp:tools"
    body.update(claims)
    return jwt.encode(
        {k: v for k, v in body.items() if v is not None}, key, algorithm=alg, headers={"kid": kid}
    )


def _config(*, access: bool = False) -> Any:
    document: dict[str, Any] = {"proxy": {"upstreams": [{"name": "fx", "command": ["fake"]}]}}
    if access:  # the token's groups claim decides: dev may, anyone else may not
        document["access"] = [{"match": {"groups": ["dev"]}}]
    return parse_config(yaml.safe_dump(document))


def _auth(jwks_url: str) -> ListenerAuth:
    oauth = OAuthResourceConfig(
        issuer=ISSUER, audience="https://gw.example/mcp", jwks_url=jwks_url, scopes=("mcp:tools",)
    )
    return ListenerAuth(oauth=oauth)


async def _call(http: httpx.AsyncClient, url: str, bearer: str | None) -> httpx.Response:
    headers = modern_headers("tools/call", "echo")
    if bearer is not None:
        headers["authorization"] = f"Bearer {bearer}"
    return await http.post(
        url,
        json=modern_request(1, "tools/call", {"name": "echo", "arguments": {"text": "x"}}),
        headers=headers,
    )


def _tampered(good: str) -> str:
    head, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "root"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{signature}"


def _hs256_with_the_public_key() -> str:
    """Algorithm confusion: HS256 keyed with the RSA public key's PEM (PyJWT refuses to sign it,
    so the token is made by hand)."""
    pem = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import hashlib
    import hmac

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    head = part({"alg": "HS256", "typ": "JWT", "kid": "k1"})
    body = part(
        {"iss": ISSUER, "aud": "https://gw.example/mcp", "sub": "mallory", "exp": int(time.time()) + 300}
    )
    signature = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


async def test_a_good_token_names_its_caller_and_the_metadata_says_where_to_sign_in() -> None:
    server = FakeServer("fx", tools={"echo": echo})
    with issuer_keys({"keys": [_jwk(KEY, "k1")]}) as jwks_url:
        async with (
            serving(_config(access=True), server, auth=_auth(jwks_url)) as (_, listener, url),
            httpx.AsyncClient() as http,
        ):
            base = url.removesuffix("/mcp")
            for path in (
                "/.well-known/oauth-protected-resource",
                "/.well-known/oauth-protected-resource/mcp",
            ):
                metadata = (await http.get(base + path)).json()
                assert metadata["authorization_servers"] == [ISSUER] and metadata["scopes_supported"] == [
                    "mcp:tools"
                ]
            missing = await _call(http, url, None)
            assert missing.status_code == 401
            challenge = missing.headers["www-authenticate"]
            assert (
                challenge.startswith("Bearer resource_metadata=")
                and "/.well-known/oauth-protected-resource/mcp" in challenge
            )
            good = await _call(http, url, token())
            assert good.status_code == 200, good.text
            other = await _call(http, url, token(sub="bob", groups=["ops"]))  # valid, but not dev
            assert other.status_code == 200 and "no access rule lets 'bob'" in other.text
            narrow = await _call(http, url, token(scope="other"))
            assert (
                narrow.status_code == 403
                and 'error="insufficient_scope"' in narrow.headers["www-authenticate"]
            )
            in_url = await http.post(
                url + "?access_token=" + token(), json={}, headers=modern_headers("ping")
            )
            assert in_url.status_code == 401
    assert len(server.session.requests("tools/call")) == 1  # only the good token's call went upstream
    assert listener.app.resource is not None and listener.app.resource.closed  # its key fetches' pool too


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (lambda: token(exp=int(time.time()) - 600), "expired"),
        (lambda: token(nbf=int(time.time()) + 600), "not yet valid"),
        (lambda: token(aud="https://elsewhere.example/mcp"), "Audience"),
        (lambda: token(iss="https://evil.example"), "issuer"),
        (lambda: token(key=OTHER), "Signature verification failed"),
        (lambda: token(kid="unknown"), "key the issuer does not publish"),
        (lambda: jwt.encode({"iss": ISSUER, "sub": "x"}, None, algorithm="none"), "'none'"),
        (_hs256_with_the_public_key, "'HS256'"),
        (lambda: _tampered(token()), "Signature verification failed"),
        (lambda: "a" * 100_000, "too long"),
        (lambda: "not-a-jwt", "not a JWT"),
    ],
)
async def test_every_bad_token_is_refused_and_nothing_goes_upstream(bad: Any, words: str) -> None:
    server = FakeServer("fx", tools={"echo": echo})
    with issuer_keys({"keys": [_jwk(KEY, "k1")]}) as jwks_url:
        async with (
            serving(_config(), server, auth=_auth(jwks_url)) as (_, _, url),
            httpx.AsyncClient() as http,
        ):
            refused = await _call(http, url, bad())
    assert refused.status_code in (401, 431), refused.text  # 431: a header too big for the server
    assert refused.status_code == 431 or words in refused.text, refused.text
    assert server.sessions == [] or server.session.requests("tools/call") == []


async def test_an_issuer_whose_keys_cannot_be_fetched_fails_closed(caplog: pytest.LogCaptureFixture) -> None:
    server = FakeServer("fx", tools={"echo": echo})
    with issuer_keys(None) as jwks_url:
        async with (
            serving(_config(), server, auth=_auth(jwks_url)) as (_, _, url),
            httpx.AsyncClient() as http,
        ):
            refused = await _call(http, url, token())
    assert refused.status_code == 401
    assert "cannot fetch the issuer's keys" in caplog.text


async def test_the_claims_worth_keeping_go_with_the_principal() -> None:
    """What access rules may match (``claims:``); never the protocol's own, the name or groups."""
    with issuer_keys({"keys": [_jwk(KEY, "k1")]}) as jwks_url:
        server = ResourceServer(_auth(jwks_url).oauth, "https://gw.example/mcp")  # type: ignore[arg-type]
        try:
            who = await server.principal(token(tenant="acme", roles=["viewer", 7, {"x": 1}], admin=True))
        finally:
            await server.aclose()
    assert (who.name, who.groups, who.proven_by) == ("ana", ("dev",), "oauth")
    assert dict(who.claims) == {"tenant": ("acme",), "roles": ("viewer", "7"), "admin": ("true",)}
    assert who.claim("tenant") == ("acme",) and who.claim("exp") == ()
