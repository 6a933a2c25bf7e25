"""Opaque access tokens checked at the issuer's RFC 7662 endpoint (a stdlib server on loopback):
an active token names its caller, an inactive or foreign one is refused, answers are cached
(by digest, until ``exp``), and an endpoint that cannot answer fails closed."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.listeners.http.conftest import issuer_endpoint
from watchgate.config.schema import IntrospectionConfig, OAuthResourceConfig
from watchgate.listeners.http.guard import CannotListen, Refusal
from watchgate.listeners.http.resource import ResourceServer

ISSUER = "https://idp.example"
RESOURCE = "https://gw.example/mcp"


def introspection_endpoint(answers: dict[str, dict[str, Any]], asked: list[str]) -> Any:
    """Answers each token it knows as given, every other one inactive; 503 for the token ``down``.
    Only the client ``gw`` with secret ``s3cret`` may ask."""

    def answer(request: Any) -> tuple[int, Any]:
        body = parse_qs(request.rfile.read(int(request.headers["content-length"])).decode())
        token = body["token"][0]
        asked.append(token)
        if request.headers.get("authorization") != "Basic " + base64.b64encode(b"gw:s3cret").decode():
            return 401, {"error": "invalid_client"}
        if token == "down":
            return 503, {}
        return 200, answers.get(token, {"active": False})

    return issuer_endpoint(answer, "/introspect")


def _server(url: str, tmp_path: Path, secret: str = "s3cret") -> ResourceServer:
    secret_file = tmp_path / "secret"
    secret_file.write_text(secret + "\n")
    os.chmod(secret_file, 0o600)
    introspection = IntrospectionConfig(url=url, client_id="gw", client_secret_file=str(secret_file))
    config = OAuthResourceConfig(
        issuer=ISSUER, audience=RESOURCE, jwks_url=url, scopes=("mcp",), introspection=introspection
    )
    return ResourceServer(config, RESOURCE)


def _active(**claims: Any) -> dict[str, Any]:
    body = {"active": True, "iss": ISSUER, "aud": RESOURCE, "sub": "ana", "scope": "mcp other"}
    body["exp"] = int(time.time()) + 300
    return {**body, **claims}


async def test_an_opaque_token_is_asked_of_the_issuer_once_and_names_its_caller(tmp_path: Path) -> None:
    asked: list[str] = []
    answers = {
        "good": _active(groups=["dev"], tenant="acme"),
        "foreign": _active(iss="https://other.example"),
        "elsewhere": _active(aud=["https://other.example/mcp"]),
        "expired": _active(exp=int(time.time()) - 3600),
        "narrow": _active(scope="other"),
        "nameless": _active(sub=None),
    }
    with introspection_endpoint(answers, asked) as url:
        server = _server(url, tmp_path)
        try:
            who = await server.principal("good")
            assert (who.name, who.groups, who.proven_by, who.claim("tenant")) == (
                "ana",
                ("dev",),
                "oauth",
                ("acme",),
            )
            await server.principal("good")
            assert asked == ["good"]  # the second time from the cache
            for token, status, says in (
                ("revoked", 401, "not active"),
                ("revoked", 401, "not active"),
                ("foreign", 401, "issued by someone else"),
                ("elsewhere", 401, "another resource"),
                ("expired", 401, "expired"),
                ("narrow", 403, "insufficient_scope"),
                ("nameless", 401, "no 'sub' claim"),
            ):
                with pytest.raises(Refusal) as refused:
                    await server.principal(token)
                assert (refused.value.status, says in str(refused.value)) == (status, True), refused.value
            assert asked.count("revoked") == 1  # "not active" is remembered a while too
        finally:
            await server.aclose()


async def test_an_issuer_that_cannot_answer_fails_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    asked: list[str] = []
    with introspection_endpoint({"good": _active()}, asked) as url:
        server = _server(url, tmp_path)
        wrong_secret = _server(url, tmp_path, secret="guess")
        try:
            for _ in range(2):
                with pytest.raises(Refusal, match="cannot be checked now"):
                    await server.principal("down")
            with pytest.raises(Refusal, match="cannot be checked now"):
                await wrong_secret.principal("good")
        finally:
            await server.aclose()
            await wrong_secret.aclose()
    said = [r.getMessage() for r in caplog.records if "introspection endpoint" in r.getMessage()]
    assert len(said) == 2 and "503" in said[0] and "401" in said[1]  # once per server per minute
    assert "down" not in " ".join(said) and "good" not in " ".join(said)  # never a token


def test_the_client_secret_must_be_private(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret")
    os.chmod(secret, 0o644)
    introspection = IntrospectionConfig(
        url="https://idp.example/introspect", client_id="gw", client_secret_file=str(secret)
    )
    config = OAuthResourceConfig(issuer=ISSUER, introspection=introspection)
    with pytest.raises(CannotListen, match=r"introspection\.client_secret_file: .* may be read by others"):
        ResourceServer(config, RESOURCE)
    with pytest.raises(ValueError, match="https://"):
        IntrospectionConfig(url="http://idp.example/introspect", client_id="gw", client_secret_file="x")
