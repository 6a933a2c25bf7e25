"""Which era each message toward a server that speaks both goes in (sans-IO bookkeeping).

A server that answers ``server/discover`` and also accepts ``initialize`` speaks both eras (the
SDKs serve both on one endpoint; ``supportedVersions`` names only the modern ones, so the first
request that needs the older era finds out). Watchgate speaks to it in the era of the client whose request a
message carries, so every client gets through the gateway what it would get directly: a
2026-07-28 client's requests go as 2026-07-28 requests (its MRTR rounds pass through), a
2025-11-25 client's over a legacy session of the connection's own, opened when the first such
request comes, where the server's own requests (sampling, elicitation, roots written with the
older helpers), its progress and its subscriptions work as they do directly. What the gateway
asks for itself (lists, liveness) goes modern.

`EraSplit` only decides; ``transports/http.py`` opens the `LegacySide` when it is needed. The facts
it keeps: the requests of legacy clients in flight (their cancellation goes the same way), and
the questions the server asked on the legacy session (the client's answer goes back there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import httpx2
import msgspec
import trio

from watchgate.sanitize import clean
from watchgate.transports.modern import as_object
from watchgate.transports.streamable import StreamableSession

if TYPE_CHECKING:
    from watchgate.config.schema import UpstreamConfig

__all__ = ["LEGACY_OPENER", "EraSplit", "LegacySide"]

#: the id of the legacy session's own ``initialize`` (its answer is the connection's, not the actor's)
LEGACY_OPENER: Final = "watchgate-legacy-session"
_CANCELLED: Final = "notifications/cancelled"

Era = Literal["legacy", "modern"]


class EraSplit:
    def __init__(self) -> None:
        self._legacy_calls: set[Any] = set()  # requests of legacy clients, by the id sent upstream
        self._asked: set[Any] = set()  # the server's requests on the legacy session, unanswered
        self.unavailable = False  # the legacy session could not be opened: everything goes modern

    def legacy_client(self, request_id: Any) -> None:
        """The request about to be sent under ``request_id`` is a 2025-11-25 client's."""
        if not self.unavailable:
            self._legacy_calls.add(request_id)

    def era_of(self, message: dict[str, Any]) -> Era:
        """Where a message the gateway sends goes."""
        if self.unavailable or not (self._legacy_calls or self._asked):
            return "modern"
        method = message.get("method")
        if method is None:  # an answer to one of the server's questions
            answered = _key(message.get("id"))
            if answered is not None and answered in self._asked:
                self._asked.discard(answered)
                return "legacy"
            return "modern"
        if "id" in message:
            return "legacy" if _key(message["id"]) in self._legacy_calls else "modern"
        if method == _CANCELLED:
            params = message.get("params")
            target = _key(params.get("requestId")) if isinstance(params, dict) else None
            if target is None or target not in self._legacy_calls:
                return "modern"
            self._legacy_calls.discard(target)  # over for the gateway, answered or not
            return "legacy"
        return "modern"

    def received(self, message: dict[str, Any] | None) -> None:
        """What the legacy session said: an answer ends a call, a request awaits the client's answer."""
        if message is None:
            return
        request_id = _key(message.get("id"))
        if request_id is None:
            return
        if "method" in message:
            self._asked.add(request_id)
        else:
            self._legacy_calls.discard(request_id)

    def give_up(self) -> None:
        """The legacy session cannot be had: the legacy clients are bridged in the modern era."""
        self.unavailable = True
        self._legacy_calls.clear()
        self._asked.clear()


def _key(value: Any) -> int | str | None:
    """A JSON-RPC id as these sets hold it (an id of another type is nobody's: never matched)."""
    return value if isinstance(value, int | str) and not isinstance(value, bool) else None


class Owner(Protocol):
    """The connection a legacy side belongs to."""

    async def from_legacy(self, message: bytes) -> None: ...

    def _end(self, reason: str, *, needs_login: bool = False) -> None: ...


class LegacySide(StreamableSession):
    """The legacy session a connection to a server of both eras keeps for its 2025-11-25 clients:
    a plain Streamable HTTP session (session id, GET stream, resumption, a forgotten session
    renewed), sharing the connection's client and nursery, with what it receives handed to the
    connection and its end the connection's end."""

    def __init__(
        self, owner: Owner, config: UpstreamConfig, client: httpx2.AsyncClient, nursery: trio.Nursery
    ) -> None:
        super().__init__(config, client, nursery)
        self._owner = owner
        self._opened = trio.Event()
        self._refusal: str | None = None
        self.version: str | None = None

    async def open(self, initialize: dict[str, Any]) -> str | None:
        """``initialize`` (under an id of its own) and ``initialized``; why not, if refused."""
        await self.send([msgspec.json.encode({**initialize, "id": LEGACY_OPENER})])
        await self._opened.wait()
        if self._refusal is None:
            await self.send([msgspec.json.encode({"jsonrpc": "2.0", "method": "notifications/initialized"})])
        return self._refusal

    async def _deliver(self, message: bytes) -> None:
        if not self._opened.is_set():
            answer = as_object(message)
            if answer is not None and answer.get("id") == LEGACY_OPENER:
                self._remember_version(message)
                self.version = self._protocol_version
                error = answer.get("error")
                if error is not None or self._session_id is None:
                    self._refusal = clean(
                        str(error.get("message") if isinstance(error, dict) else "no session id")
                    )
                self._opened.set()
                return
        await self._owner.from_legacy(message)

    async def _fall_back(self, line: bytes, status: int) -> None:
        """Not beside a 2026-07-28 session: a refused initialize means none to be had."""
        await self._refuse(line, f"{self.host} answered HTTP {status} to initialize")

    def _end(self, reason: str, *, needs_login: bool = False) -> None:
        if not self._opened.is_set():
            self._refusal = reason
            self._opened.set()
            return
        super()._end(reason, needs_login=needs_login)
        self._owner._end(reason, needs_login=needs_login)
