"""The HTTP listener as an OAuth 2.1 resource server (``proxy.http.auth.oauth``).

What the MCP authorization spec asks of an MCP server behind HTTP: it publishes its Protected
Resource Metadata (RFC 9728) at ``/.well-known/oauth-protected-resource`` (and the path form
``…/mcp``), answers a missing or bad token with 401 and ``WWW-Authenticate: Bearer
resource_metadata="…"`` (an MCP client then signs its user in by itself), and a token without a
required scope with 403 ``insufficient_scope``. Tokens are JWTs signed by the issuer's keys
(JWKS, found through its RFC 8414 or OpenID metadata when not given, cached, fetched again on an
unknown ``kid`` at most once a minute), checked with PyJWT: asymmetric algorithms only (never
``none``, never an HS algorithm keyed with a public key), ``iss`` exact, ``aud`` the listener's
resource, ``exp``/``nbf`` with a small leeway. A JWKS that cannot be fetched fails closed.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

import httpx2
import jwt
import trio

from watchgate.config.schema import OAuthResourceConfig
from watchgate.listeners.http.guard import Refusal
from watchgate.listeners.http.introspection import Introspector
from watchgate.protocol.identity import Principal, kept_claims

__all__ = ["ALGORITHMS", "ResourceServer"]

ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
_REFETCH_AFTER: Final = 60.0  # an unknown kid fetches the keys again, at most this often
_log = logging.getLogger("watchgate.http")


class ResourceServer:
    def __init__(
        self, config: OAuthResourceConfig, resource: str, client: httpx2.AsyncClient | None = None
    ) -> None:
        self.config = config
        self.resource = resource  # the listener's own URL: the audience unless the config says
        self._client = client or httpx2.AsyncClient(timeout=10.0)
        introspection = config.introspection
        self._introspector = Introspector(introspection, self._client) if introspection is not None else None
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._lock = trio.Lock()

    @property
    def closed(self) -> bool:
        return self._client.is_closed

    async def aclose(self) -> None:
        """Close the connections kept to the issuer (the listener stops; nothing asks again)."""
        await self._client.aclose()

    def metadata(self) -> dict[str, Any]:
        """RFC 9728: this resource, who issues its tokens, the scopes it wants."""
        return {
            "resource": self.resource,
            "authorization_servers": [self.config.issuer],
            "scopes_supported": list(self.config.scopes),
            "bearer_methods_supported": ["header"],
        }

    def challenge(self, metadata_url: str, error: str | None = None) -> bytes:
        parts = [f'resource_metadata="{metadata_url}"']
        if error == "insufficient_scope":
            parts += ['error="insufficient_scope"', f'scope="{" ".join(self.config.scopes)}"']
        elif error is not None:
            parts.append(f'error="{error}"')
        return ("Bearer " + ", ".join(parts)).encode()

    async def principal(self, token: str) -> Principal:
        """Who the token proves; `Refusal` 401 (bad token) or 403 (a scope missing)."""
        if len(token) > 16_384:
            raise Refusal(401, "the token is too long to be one of ours")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            if self._introspector is None:
                raise Refusal(401, "the bearer token is not a JWT") from None
            return self._principal(self._checked(await self._introspector.claims(token)))
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise Refusal(401, f"tokens signed with {algorithm!r} are not accepted")
        key = await self._key(str(header.get("kid", "")))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.config.audience or self.resource,
                issuer=self.config.issuer,
                leeway=self.config.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise Refusal(401, f"the bearer token is refused: {exc}") from None
        return self._principal(claims)

    def _checked(self, claims: dict[str, Any]) -> dict[str, Any]:
        """What an introspection answer must say, as a JWT must: our issuer and audience (when it
        names them), and times that hold."""
        now, leeway = time.time(), self.config.leeway
        issuer = claims.get("iss")
        if issuer is not None and issuer != self.config.issuer:
            raise Refusal(401, "the bearer token is refused: it was issued by someone else")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if audience is not None and (self.config.audience or self.resource) not in audiences:
            raise Refusal(401, "the bearer token is refused: it is meant for another resource")
        expires, starts = claims.get("exp"), claims.get("nbf")
        if isinstance(expires, int | float) and expires < now - leeway:
            raise Refusal(401, "the bearer token is refused: it has expired")
        if isinstance(starts, int | float) and starts > now + leeway:
            raise Refusal(401, "the bearer token is refused: it is not valid yet")
        return claims

    def _principal(self, claims: dict[str, Any]) -> Principal:
        """The caller a token's claims name, once its scopes are enough (403 otherwise)."""
        granted = claims.get("scope", "")
        scopes = set(granted.split()) if isinstance(granted, str) else set(claims.get("scp") or ())
        missing = [scope for scope in self.config.scopes if scope not in scopes]
        if missing:
            raise Refusal(403, f"the token lacks the scope {' '.join(missing)} (insufficient_scope)")
        name = claims.get(self.config.claims.user)
        groups = claims.get(self.config.claims.groups) or ()
        if not isinstance(name, str) or not name:
            raise Refusal(401, f"the token has no {self.config.claims.user!r} claim to name its caller")
        kept = tuple(g for g in groups if isinstance(g, str)) if isinstance(groups, list) else ()
        names = (self.config.claims.user, self.config.claims.groups)
        return Principal(name=name, groups=kept, proven_by="oauth", claims=kept_claims(claims, besides=names))

    async def _key(self, kid: str) -> Any:
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            now = trio.current_time()
            if self._fetched_at is None or now - self._fetched_at >= _REFETCH_AFTER:
                self._fetched_at = now
                await self._fetch()
        key = self._keys.get(kid)
        if key is None:
            raise Refusal(401, "the token is signed with a key the issuer does not publish")
        return key

    async def _fetch(self) -> None:
        try:
            url = self.config.jwks_url or await self._discover_jwks()
            response = await self._client.get(url)
            response.raise_for_status()
            jwks = jwt.PyJWKSet.from_dict(response.json())
        except (httpx2.HTTPError, ValueError, jwt.PyJWTError) as exc:
            _log.warning("cannot fetch the issuer's keys (%s): tokens are refused until it answers", exc)
            return
        self._keys = {k.key_id or "": k.key for k in jwks.keys}

    async def _discover_jwks(self) -> str:
        """RFC 8414 first, then OpenID Connect discovery; the issuer must match exactly."""
        base = self.config.issuer.rstrip("/")
        for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
            response = await self._client.get(base + path)
            if response.status_code != 200:
                continue
            metadata = response.json()
            if metadata.get("issuer") == self.config.issuer and isinstance(metadata.get("jwks_uri"), str):
                return str(metadata["jwks_uri"])
        raise ValueError(f"{self.config.issuer} publishes no metadata naming its jwks_uri")
