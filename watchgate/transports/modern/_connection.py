"""The 2026-07-28 era toward one server, over any wire: what the HTTP and stdio transports share.

The upstream actor speaks the ``initialize`` era on its side of the seam. A transport that
reaches a server of the 2026-07-28 era plugs a `ModernWire` (three verbs: post a message,
cancel a request, keep a ``subscriptions/listen`` request open; and hand the actor a message)
into a `ModernConnection`, which owns everything of the era toward the server: the
``server/discover`` probe and the ``initialize`` answer made of it, ``_meta`` and the headers
of each request, the answers given here (``logging/setLevel``, subscriptions), ``input_required``
rounds for clients of the older era (their retries posted again), and which
``subscriptions/listen`` request should be open. The wire does only the I/O: over HTTP a POST
per message and a stream per listen; on stdio a line each, cancellation by notification.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, Protocol

import msgspec

from watchgate.protocol.subscriptions import SUBSCRIPTION_KEY
from watchgate.transports.modern._session import MODERN, Cancel, ModernSession, Send

__all__ = ["ModernConnection", "ModernWire"]

_log = logging.getLogger("watchgate.upstream")


class ModernWire(Protocol):
    async def post(self, send: Send) -> None:
        """Send a request or notification; what the server answers goes to `ModernConnection.received`."""

    async def cancel(self, request_id: Any, line: bytes) -> None:
        """End a request the actor cancelled (``line``: its ``notifications/cancelled``): over
        HTTP its stream is closed, on stdio the notification is written."""

    async def listen(self, request: Send | None) -> None:
        """Keep ``request`` (a ``subscriptions/listen``) open instead of the one open now, if
        any; None: none. Its events go to `ModernConnection.heard`."""

    async def deliver(self, message: bytes) -> None:
        """Hand a message to the actor as it is."""


class _Unwired:
    """The wire of a connection that only probes (``watchgate auth login``)."""

    async def post(self, send: Send) -> None:
        return

    async def cancel(self, request_id: Any, line: bytes) -> None:
        return

    async def listen(self, request: Send | None) -> None:
        return

    async def deliver(self, message: bytes) -> None:
        return


class ModernConnection:
    def __init__(self, wire: ModernWire | None, initialize: dict[str, Any], server: str) -> None:
        """``initialize``: the actor's, whose id the probe answers under and whose client
        identity goes in every request's ``_meta``; ``wire`` None: one that only probes."""
        self.session = ModernSession(initialize, server)
        self._wire: ModernWire = _Unwired() if wire is None else wire
        self._server = server
        self.initialize_id = initialize.get("id")
        self._wanted: dict[str, Any] = {}
        self._listen_ids = itertools.count(1)
        self.listening: str | None = None  # the id of the listen request open now
        self._discovery: dict[str, Any] = {}  # what server/discover said

    # -- the probe ------------------------------------------------------------------------------------

    def discover_request(self) -> Send:
        """``server/discover`` under the id of the actor's ``initialize``."""
        body, headers = self.session.discover(self.initialize_id)
        return Send(body, headers, self.initialize_id)

    def discovered(self, answer: bytes) -> str | None:
        """The probe's answer: None if the server speaks the era (its capabilities are kept),
        else what it said instead."""
        try:
            message = msgspec.json.decode(answer)
        except msgspec.DecodeError:
            return "it answered server/discover with something that is not JSON"
        result = message.get("result") if isinstance(message, dict) else None
        versions = result.get("supportedVersions") if isinstance(result, dict) else None
        if isinstance(result, dict) and isinstance(versions, list) and MODERN in versions:
            self.session.capabilities = result.get("capabilities") or {}
            self._discovery = result
            return None
        error = message.get("error") if isinstance(message, dict) else None
        said = error.get("message") if isinstance(error, dict) else None
        return f"server/discover failed: {said}" if said else f"it supports {versions or 'no listed version'}"

    def initialize_answer(self) -> bytes:
        """The actor's ``initialize`` answered from the discovery (`discovered` said yes)."""
        result = ModernSession.initialize_result(self._discovery)
        return msgspec.json.encode({"jsonrpc": "2.0", "id": self.initialize_id, "result": result})

    # -- toward the server --------------------------------------------------------------------------

    def relay(self, request_id: Any, capabilities: dict[str, Any]) -> None:
        self.session.relay(request_id, capabilities)

    async def send(self, message: dict[str, Any], line: bytes) -> None:
        """A message of the actor's (``line`` decoded), in this era: posted, cancelled, or
        answered here."""
        outgoing = self.session.outgoing(message)
        if isinstance(outgoing, Send):
            await self._wire.post(outgoing)
        elif isinstance(outgoing, Cancel):
            await self._wire.cancel(outgoing.request_id, line)
        else:
            if outgoing.answer is not None:
                await self._wire.deliver(outgoing.answer)
            await self.update_listen()  # initialized, or a subscription changed

    async def note(self, message: dict[str, Any]) -> None:
        """A subscription sent in the other era (a legacy session beside this one, which
        answers it): the listen stream watches it too, as the server may say it changed on
        either."""
        self.session.outgoing(message)
        await self.update_listen()

    # -- from the server ---------------------------------------------------------------------------

    async def received(self, message: bytes) -> None:
        """An answer or message of the server's, for the actor (a retry posted instead, when an
        ``input_required`` round is complete)."""
        messages, retry = self.session.receive(message)
        if retry is not None:
            await self._wire.post(self.session.retry(retry))
        for each in messages:
            await self._wire.deliver(each)

    async def heard(self, event: bytes) -> bool:
        """An event of the listen stream, for the actor; False once the server ended the stream."""
        notification, ended = ModernSession.from_listen(event)
        if notification is not None:
            await self._wire.deliver(notification)
        return not ended

    # -- subscriptions/listen -----------------------------------------------------------------------

    async def update_listen(self, *, again: bool = False) -> None:
        """Open, replace or close the listen request if what the gateway wants to hear has
        changed (``again``: the server ended it, ask once more)."""
        wanted = self.session.listen_filter()
        if wanted == self._wanted and not again:
            return
        self._wanted = wanted
        await self._wire.listen(self.renewed_listen())

    def renewed_listen(self) -> Send | None:
        """The listen request for what the gateway wants to hear, under a new id (also for a
        wire that reopens a dropped stream); None when there is nothing to hear."""
        if not self._wanted:
            self.listening = None
            return None
        self.listening = f"watchgate-listen-{next(self._listen_ids)}"
        body, headers = self.session.listen_request(self.listening, self._wanted)
        return Send(body, headers, self.listening)

    def of_listen(self, message: dict[str, Any]) -> bool:
        """A message of the open listen stream (on a wire where it shares the channel)."""
        if "method" not in message:
            return bool(message.get("id") == self.listening)
        return bool(subscription_of(message) == self.listening)


def subscription_of(message: dict[str, Any]) -> Any:
    """The subscription a notification of a listen stream names, if any."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return meta.get(SUBSCRIPTION_KEY) if isinstance(meta, dict) else None
