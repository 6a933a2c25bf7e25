"""Who may talk to the HTTP listener: the checks made before a request reaches any session.

Every refusal is an HTTP status with a JSON-RPC error body saying why (design.md §5):
a browser page of another origin (403: DNS rebinding), a missing or wrong bearer token (401),
a body of the wrong type (415) or over the limit (413), an ``Accept`` that takes neither JSON
nor SSE (406). A listener on a non-loopback address without a token never starts.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import stat
from urllib.parse import urlsplit

from watchgate.config.schema import HttpListenerConfig
from watchgate.errors import CannotListen
from watchgate.protocol.identity import ANONYMOUS, Principal

__all__ = ["Refusal", "RequestGuard", "is_loopback", "split_listen"]

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


class Refusal(Exception):
    """A request turned away: ``status`` and the message its JSON-RPC error carries."""

    def __init__(self, status: int, message: str, code: int = -32600) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(path: str, what: str = "proxy.http.token_file") -> bytes:
    """A secret of the listener's (its bearer token); `CannotListen` if it is unreadable, empty,
    or others may read it. ``what``: the config key that names the file, for the message."""
    try:
        info = os.stat(path)
        with open(path, "rb") as file:
            token = file.read().strip()
    except OSError as exc:
        raise CannotListen(f"{what}: cannot read {path}: {exc.strerror}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CannotListen(
            f"{what}: {path} may be read by others (mode {stat.S_IMODE(info.st_mode):o}); "
            f"run `chmod 600 {path}`"
        )
    if not token:
        raise CannotListen(f"{what}: {path} is empty")
    return token


class RequestGuard:
    def __init__(self, config: HttpListenerConfig) -> None:
        host, _ = split_listen(config.listen)
        self.loopback = is_loopback(host)
        # (SHA-256 of a token, who it proves): only digests are kept, compared in constant time
        self._tokens: list[tuple[bytes, Principal]] = []
        if config.token_file is not None:
            digest = hashlib.sha256(read_token(config.token_file)).digest()
            self._tokens.append((digest, Principal(name="token", proven_by="token")))
        for entry in config.auth.tokens if config.auth is not None else ():
            if entry.sha256 is not None:
                digest = bytes.fromhex(entry.sha256)
            else:
                assert entry.token_file is not None
                digest = hashlib.sha256(read_token(entry.token_file)).digest()
            self._tokens.append((digest, Principal(name=entry.name, groups=entry.groups, proven_by="token")))
        self.oauth = config.auth is not None and config.auth.oauth is not None
        if not self.loopback and not self._tokens and not self.oauth:
            raise CannotListen(
                f"refusing to listen on {config.listen} without a bearer token: anyone who can reach "
                "it could use every server behind it (set proxy.http.token_file, or listen on 127.0.0.1)"
            )
        self._origins = frozenset(o.rstrip("/").lower() for o in config.allowed_origins)
        self._max_body = config.max_body

    def check_host(self, headers: dict[str, str]) -> None:
        """On a loopback listener the ``Host`` must name a loopback address: a page whose DNS
        name was rebound to 127.0.0.1 sends its own name, and gets 421, not the listener
        (``/healthz`` included: a same-origin GET carries no ``Origin``)."""
        if not self.loopback:
            return  # reached by name through proxies; the token guards it
        host = headers.get("host", "")
        name = host.rpartition("]")[0] + "]" if host.startswith("[") else host.rpartition(":")[0] or host
        if not is_loopback(name.strip("[]")):
            raise Refusal(421, f"Host {host!r} is not this loopback listener's (DNS rebinding?)")

    def check(self, headers: dict[str, str]) -> Principal | None:
        """Who is calling; `Refusal` unless the origin and the token are acceptable. None: a
        bearer token for the resource server to judge (``auth.oauth``)."""
        origin = headers.get("origin")
        if origin is not None and not self._origin_allowed(origin):
            raise Refusal(403, f"origin {origin!r} is not allowed (proxy.http.allowed_origins)")
        if not self._tokens and not self.oauth:
            return ANONYMOUS
        scheme, _, token = headers.get("authorization", "").partition(" ")
        presented = hashlib.sha256(token.strip().encode()).digest()
        found = ANONYMOUS
        for digest, principal in self._tokens:  # every one compared: the time says nothing
            if hmac.compare_digest(presented, digest):
                found = principal
        if scheme.lower() == "bearer" and found is ANONYMOUS and self.oauth and token.strip():
            return None
        if scheme.lower() != "bearer" or found is ANONYMOUS:
            raise Refusal(401, "a valid bearer token is required (Authorization: Bearer …)")
        return found

    def _origin_allowed(self, origin: str) -> bool:
        if origin.rstrip("/").lower() in self._origins:
            return True
        host = urlsplit(origin).hostname or ""
        return self.loopback and is_loopback(host)

    def check_post(self, headers: dict[str, str]) -> bool:
        """The POST's content type and what it accepts; True if an SSE stream may answer it."""
        content_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        if content_type != "application/json":
            raise Refusal(415, "the body must be application/json (one JSON-RPC message)")
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._max_body:
            raise Refusal(413, f"the body is over {self._max_body} bytes")
        accept = headers.get("accept", "*/*").lower()
        sse = "text/event-stream" in accept or "*/*" in accept
        if not sse and "application/json" not in accept and "application/*" not in accept:
            raise Refusal(406, "Accept must include application/json or text/event-stream")
        return "text/event-stream" in accept

    @property
    def max_body(self) -> int:
        return self._max_body
