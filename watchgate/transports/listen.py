"""``subscriptions/listen`` toward a server of the 2026-07-28 era: what it says outside requests.

That era has no GET stream and no ``resources/subscribe``: a client that wants the server's list
changes and resource updates keeps one long-lived ``subscriptions/listen`` request open, whose
``notifications`` filter names what it wants (spec ``basic/patterns/subscriptions``). The HTTP
connection keeps one such stream per modern server, with the filter ``ModernSession`` computes
(the list changes the server offers, the URIs the gateway's clients subscribed to). A new filter
closes the stream (in this era, closing it is the cancellation) and opens another. Each
notification goes to the upstream actor as if the server had sent it on the older era's GET
stream, without the stream's subscription id; the acknowledgment is the connection's business.
A stream the server ends, or that drops, is reopened; a server that refuses it (an HTTP error)
is not asked again until the filter changes.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import httpx2
import trio

from watchgate.errors import UpstreamAuthError
from watchgate.transports.modern import ModernSession
from watchgate.transports.sse import each_event

__all__ = ["ListenStream"]

_log = logging.getLogger("watchgate.upstream")
_REOPEN_DELAY: Final = 1.0
_FAILURES: Final = 5  # drops in a row before the connection stops reopening the stream
_ACCEPT: Final = "application/json, text/event-stream"


class ListenStream:
    """The one ``subscriptions/listen`` request a modern server connection keeps open."""

    def __init__(
        self,
        modern: ModernSession,
        client: httpx2.AsyncClient,
        url: str,
        server: str,
        deliver: Callable[[bytes], Awaitable[None]],
        nursery: trio.Nursery,
    ) -> None:
        self._modern = modern
        self._client = client
        self._url = url
        self._server = server
        self._deliver = deliver
        self._nursery = nursery
        self._wanted: dict[str, Any] = {}
        self._current: trio.CancelScope | None = None
        self._ids = itertools.count(1)

    def update(self) -> None:
        """Open, reopen or close the stream if what the gateway wants to hear has changed."""
        wanted = self._modern.listen_filter()
        if wanted == self._wanted:
            return
        self._wanted = wanted
        if self._current is not None:
            self._current.cancel()  # closing the stream ends that subscription on the server
            self._current = None
        if wanted:
            self._current = trio.CancelScope()
            self._nursery.start_soon(self._keep_open, wanted, self._current)

    async def _keep_open(self, wanted: dict[str, Any], scope: trio.CancelScope) -> None:
        with scope:
            failures = 0
            while failures < _FAILURES:
                try:
                    if not await self._listen(wanted):
                        return
                    failures = 0
                except (httpx2.HTTPError, UpstreamAuthError) as exc:
                    failures += 1
                    _log.debug("[%s] the subscriptions/listen stream dropped: %r", self._server, exc)
                await trio.sleep(_REOPEN_DELAY)
            _log.warning("[%s] subscriptions/listen keeps failing: no list changes from it", self._server)

    async def _listen(self, wanted: dict[str, Any]) -> bool:
        """One listen request, read to its end; False if the server refused it."""
        body, headers = self._modern.listen_request(f"watchgate-listen-{next(self._ids)}", wanted)
        headers = {"accept": _ACCEPT, "content-type": "application/json", **headers}
        async with self._client.stream("POST", self._url, content=body, headers=headers) as response:
            kind = response.headers.get("content-type", "").partition(";")[0].strip().lower()
            if response.status_code >= 400 or kind != "text/event-stream":
                answer = (await response.aread())[:200].decode("utf-8", "replace")
                _log.info(
                    "[%s] refused subscriptions/listen (HTTP %d): no list changes or resource "
                    "updates from it; %s",
                    self._server,
                    response.status_code,
                    answer,
                )
                return False

            async def take(event: httpx2.ServerSentEvent) -> bool:
                if not event.data:
                    return True
                notification, ended = self._modern.from_listen(event.data.encode())
                if notification is not None:
                    await self._deliver(notification)
                return not ended

            await each_event(response, take)
        return True
