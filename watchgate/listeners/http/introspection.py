"""Opaque access tokens, checked by asking their issuer (RFC 7662 token introspection).

Some authorization servers hand out tokens that are not JWTs (random strings only they can
read). For those the resource server posts the token to the issuer's introspection endpoint,
authenticating as a client of its own (HTTP Basic: ``client_id`` and a secret kept in a 0600
file), and gets back whether it is ``active`` and its claims. Answers are cached by the token's
SHA-256 (never the token) until the token's ``exp``, at most ``cache`` seconds; a "not active"
answer for a short while, so a client retrying a revoked token does not flood the issuer. An
endpoint that cannot answer fails closed: the token is refused and the log says why, once a
minute.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any, Final

import httpx2
import trio

from watchgate.config.schema import IntrospectionConfig
from watchgate.listeners.http.guard import Refusal, read_token

__all__ = ["Introspector"]

_INACTIVE_FOR: Final = 10.0  # seconds a "not active" answer is remembered
_MAX_CACHED: Final = 10_000  # tokens remembered at most (the oldest go first)
_SAY_AGAIN_AFTER: Final = 60.0  # an unreachable endpoint is logged at most this often
_log = logging.getLogger("watchgate.http")


class Introspector:
    def __init__(self, config: IntrospectionConfig, client: httpx2.AsyncClient) -> None:
        self.config = config
        secret = read_token(
            config.client_secret_file, "proxy.http.auth.oauth.introspection.client_secret_file"
        )
        self._auth = httpx2.BasicAuth(config.client_id, secret.decode())
        self._client = client
        self._cache: dict[bytes, tuple[float, dict[str, Any] | None]] = {}  # digest -> (until, claims)
        self._said_at: float | None = None

    async def claims(self, token: str) -> dict[str, Any]:
        """The claims of an active token; `Refusal` 401 for one the issuer does not vouch for."""
        digest = hashlib.sha256(token.encode()).digest()
        now = time.time()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            claims = cached[1]
        else:
            claims = await self._ask(token)
            self._remember(digest, claims, now)
        if claims is None:
            raise Refusal(401, "the issuer says the bearer token is not active")
        return claims

    async def _ask(self, token: str) -> dict[str, Any] | None:
        try:
            response = await self._client.post(
                self.config.url,
                data={"token": token, "token_type_hint": "access_token"},
                auth=self._auth,
                headers={"accept": "application/json"},
            )
            response.raise_for_status()
            answer = response.json()
        except (httpx2.HTTPError, ValueError) as exc:
            self._say(
                f"the issuer's introspection endpoint cannot be used ({exc}): opaque tokens are refused"
            )
            raise Refusal(
                401, "the bearer token cannot be checked now (the issuer does not answer)"
            ) from None
        if not isinstance(answer, dict):
            self._say("the issuer's introspection endpoint answered something other than a JSON object")
            raise Refusal(401, "the bearer token cannot be checked now")
        return answer if answer.get("active") is True else None

    def _remember(self, digest: bytes, claims: dict[str, Any] | None, now: float) -> None:
        until = now + (self.config.cache if claims is not None else min(self.config.cache, _INACTIVE_FOR))
        expires = claims.get("exp") if claims is not None else None
        if isinstance(expires, int | float) and not isinstance(expires, bool):
            until = min(until, float(expires))
        self._cache.pop(digest, None)
        self._cache[digest] = (until, claims)
        while len(self._cache) > _MAX_CACHED:
            del self._cache[next(iter(self._cache))]

    def _say(self, line: str) -> None:
        now = trio.current_time()
        if self._said_at is None or now - self._said_at >= _SAY_AGAIN_AFTER:
            self._said_at = now
            _log.warning(line)
