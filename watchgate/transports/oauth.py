"""OAuth 2.1 toward remote servers (``auth: {type: oauth}``), with the MCP SDK's client auth.

The MCP authorization rules (RFC 9728 protected-resource metadata found from
``WWW-Authenticate`` or the well-known URLs, RFC 8414/OIDC metadata with the issuer checked
exactly, RFC 9207 ``iss``, pre-registered client → client-ID metadata document → dynamic
registration, PKCE, RFC 8707 ``resource``, refresh, step-up on 403 ``insufficient_scope``) are
the SDK's ``OAuthClientProvider``: an ``httpx2.Auth``, so it plugs into the connection's client
as it is (ADR-022). What is Watchgate's:

- **where tokens live**: one 0600 JSON file (``$XDG_CONFIG_HOME/watchgate/oauth-tokens.json``)
  keyed by the server's URL (its resource), each entry with the issuer it came from, the
  granted scopes, the absolute expiry and the registered client. Never logged, never in
  ``ps``, audit or an error;
- **who may ask a person**: only ``watchgate auth login`` (``cli/auth.py``) has a browser and a
  loopback redirect listener. The daemon's connections do not: when a server wants a login
  they fail with `UpstreamAuthError` saying ``watchgate auth login NAME``;
- **the edge**: the SDK's exceptions become `UpstreamAuthError` here, so the transport above
  catches only Watchgate's tree.

The SDK is imported only when an upstream uses OAuth (it costs ~0.7 s to import).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
from mcp.client.auth import OAuthClientProvider, OAuthFlowError
from mcp.client.auth.utils import union_scopes
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

from watchgate.errors import UpstreamAuthError

if TYPE_CHECKING:
    from watchgate.config.schema import UpstreamConfig

__all__ = ["AuthorizationCodeResult", "TokenFile", "gateway_auth", "token_file_path"]

# the SDK logs every flow error with its traceback; the gateway says what went wrong, once
logging.getLogger("mcp.client.auth").setLevel(logging.CRITICAL)

_REFRESH_EARLY = 60.0  # seconds before a stored token's expiry that it is refreshed

RedirectHandler = Callable[[str], Awaitable[None]]
CallbackHandler = Callable[[], Awaitable[AuthorizationCodeResult]]


def token_file_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "watchgate" / "oauth-tokens.json"


class TokenFile:
    """The SDK's ``TokenStorage`` for one server, in the shared 0600 file."""

    def __init__(self, resource: str, path: Path | None = None) -> None:
        self.resource = resource
        self.path = path or token_file_path()

    def _read_all(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write_all(self, data: dict[str, Any]) -> None:
        folder = self.path.parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.lstat()
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(folder, 0o700)  # an existing folder (made by another tool) is made private too
        scratch = self.path.with_suffix(".tmp")
        scratch.unlink(missing_ok=True)  # created new: never through a link planted at its name
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=1, sort_keys=True)
        os.replace(scratch, self.path)

    def entry(self) -> dict[str, Any]:
        entry = self._read_all().get(self.resource)
        return entry if isinstance(entry, dict) else {}

    def _update(self, **fields: Any) -> None:
        data = self._read_all()
        data[self.resource] = {**data.get(self.resource, {}), **fields}
        self._write_all(data)

    def want(self, scope: str | None) -> None:
        """Remember the scopes a login must ask for (the server wanted more than it has)."""
        if scope:
            self._update(wanted_scope=scope)

    def wanted(self) -> str | None:
        scope = self.entry().get("wanted_scope")
        return scope if isinstance(scope, str) else None

    def start_over(self) -> None:
        """A new login: the old tokens go (the client's registration stays)."""
        data = self._read_all()
        entry = data.get(self.resource)
        if isinstance(entry, dict) and entry.pop("tokens", None) is not None:
            entry.pop("expires_at", None)
            self._write_all(data)

    def forget(self) -> bool:
        data = self._read_all()
        if data.pop(self.resource, None) is None:
            return False
        self._write_all(data)
        return True

    async def get_tokens(self) -> OAuthToken | None:
        tokens = self.entry().get("tokens")
        return OAuthToken.model_validate(tokens) if isinstance(tokens, dict) else None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        expires = time.time() + tokens.expires_in if tokens.expires_in else None
        self._update(tokens=tokens.model_dump(mode="json", exclude_none=True), expires_at=expires)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        client = self.entry().get("client")
        return OAuthClientInformationFull.model_validate(client) if isinstance(client, dict) else None

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self._update(client=client_info.model_dump(mode="json", exclude_none=True), issuer=client_info.issuer)


class _Provider(OAuthClientProvider):
    """The SDK's provider, asking also for the scopes the config names and those a server
    wanted in a step-up the daemon could not do without a person (SEP-2350: the union)."""

    def __init__(self, *args: Any, wanted: str | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wanted = wanted

    async def _initialize(self) -> None:
        """Stored tokens come back with their expiry (the SDK keeps it only in memory), a
        minute early: a token is refreshed before it runs out, not after a 401 that would
        need a person."""
        await super()._initialize()
        storage = self.context.storage
        expires = storage.entry().get("expires_at") if isinstance(storage, TokenFile) else None
        if isinstance(expires, int | float):
            self.context.token_expiry_time = expires - _REFRESH_EARLY

    async def _perform_authorization_code_grant(self) -> tuple[str, str]:
        metadata = self.context.client_metadata
        metadata.scope = union_scopes(self.wanted, metadata.scope)
        return await super()._perform_authorization_code_grant()


class GatewayAuth(httpx2.Auth):
    """The SDK's provider, with its exceptions translated into `UpstreamAuthError`."""

    requires_response_body = True

    def __init__(self, provider: _Provider, name: str, storage: TokenFile) -> None:
        self._provider = provider
        self._name = name
        self._storage = storage

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        flow = self._provider.async_auth_flow(request)
        try:
            outgoing = await flow.__anext__()
            while True:
                response = yield outgoing
                outgoing = await flow.asend(response)
        except StopAsyncIteration:
            return
        except _NeedsLogin:
            # what the server asked for, for the login to ask again (a step-up's union included)
            self._storage.want(self._provider.context.client_metadata.scope)
            raise UpstreamAuthError(
                f"needs login: run `watchgate auth login {self._name}`", needs_login=True
            ) from None
        except (OAuthFlowError, ValueError) as exc:  # the SDK's flow errors, its metadata's validation
            raise UpstreamAuthError(f"OAuth failed: {str(exc).splitlines()[0][:300]}") from None
        finally:
            await flow.aclose()


class _NeedsLogin(Exception):
    """A connection without a person was asked to send one to the authorization server."""


async def _no_person(url: str) -> None:
    raise _NeedsLogin


async def _no_callback() -> AuthorizationCodeResult:
    raise _NeedsLogin


def gateway_auth(
    config: UpstreamConfig,
    *,
    redirect_uri: str = "http://127.0.0.1/callback",
    redirect_handler: RedirectHandler | None = None,
    callback_handler: CallbackHandler | None = None,
    storage: TokenFile | None = None,
) -> GatewayAuth:
    """The auth for ``config``'s connection; with handlers, the one ``auth login`` uses."""
    assert config.auth is not None and config.url is not None
    auth = config.auth
    storage = storage or TokenFile(config.url)
    metadata = OAuthClientMetadata(
        client_name="Watchgate",
        redirect_uris=[redirect_uri],  # type: ignore[list-item]
        grant_types=["authorization_code", "refresh_token"],
        token_endpoint_auth_method="client_secret_post" if auth.client_secret_file else "none",
        scope=" ".join(auth.scopes) or None,
    )
    configured = " ".join(auth.scopes) or None
    provider = _Provider(
        server_url=config.url,
        client_metadata=metadata,
        storage=storage,
        redirect_handler=redirect_handler or _no_person,
        callback_handler=callback_handler or _no_callback,
        client_metadata_url=auth.client_metadata_url,
        wanted=union_scopes(configured, storage.wanted()),
    )
    return GatewayAuth(provider, config.name, storage)


async def preregister(config: UpstreamConfig, storage: TokenFile, redirect_uri: str) -> None:
    """A pre-registered client (``client_id``, maybe ``client_secret_file``) goes in first: the
    flow then never registers one of its own."""
    assert config.auth is not None
    if config.auth.client_id is None:
        return
    secret = _read_secret(config.auth.client_secret_file) if config.auth.client_secret_file else None
    client = OAuthClientInformationFull(
        client_id=config.auth.client_id,
        client_secret=secret,
        redirect_uris=[redirect_uri],  # type: ignore[list-item]
        # RFC 6749 section 2.3.1: every server takes HTTP Basic for a client with a secret
        token_endpoint_auth_method="client_secret_basic" if secret else "none",
    )
    await storage.set_client_info(client)


def _read_secret(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UpstreamAuthError(f"auth.client_secret_file: cannot read {path}: {exc.strerror}") from None
