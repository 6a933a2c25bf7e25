"""``subscriptions/listen`` toward a server of the 2026-07-28 era over HTTP: one long-lived stream.

That era has no GET stream and no ``resources/subscribe``: a client that wants the server's list
changes and resource updates keeps one ``subscriptions/listen`` request open, whose
``notifications`` filter names what it wants (spec ``basic/patterns/subscriptions``). Which
request should be open is the era layer's (``ModernConnection.update_listen``); this keeps it
open over HTTP: a new request closes the stream (in this era, closing it is the cancellation)
and opens another, each event goes to ``ModernConnection.heard``, a stream the server ends or
that drops is reopened, and a server that refuses it (an HTTP error) is not asked again until
the filter changes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

import httpx2
import trio

from watchgate.errors import UpstreamAuthError
from watchgate.transports.modern import Send
from watchgate.transports.sse import each_event

__all__ = ["ListenStream"]

_log = logging.getLogger("watchgate.upstream")
_REOPEN_DELAY: Final = 1.0
_FAILURES: Final = 5  # drops in a row before the connection stops reopening the stream
_ACCEPT: Final = "application/json, text/event-stream"


class ListenStream:
    """The one listen request a modern server connection keeps open over HTTP."""

    def __init__(
        self,
        client: httpx2.AsyncClient,
        url: str,
        server: str,
        heard: Callable[[bytes], Awaitable[bool]],
        renewed: Callable[[], Send | None],
        nursery: trio.Nursery,
    ) -> None:
        """``heard``: takes each event, False once the server ended the stream; ``renewed``:
        the request again under a new id, to reopen it."""
        self._client = client
        self._url = url
        self._server = server
        self._heard = heard
        self._renewed = renewed
        self._nursery = nursery
        self._current: trio.CancelScope | None = None

    def replace(self, request: Send | None) -> None:
        """Close the stream open now, if any, and keep ``request`` open instead (None: none)."""
        if self._current is not None:
            self._current.cancel()  # closing the stream ends that subscription on the server
            self._current = None
        if request is not None:
            self._current = trio.CancelScope()
            self._nursery.start_soon(self._keep_open, request, self._current)

    async def _keep_open(self, request: Send | None, scope: trio.CancelScope) -> None:
        with scope:
            failures = 0
            while failures < _FAILURES and request is not None:
                try:
                    if not await self._listen(request):
                        return
                    failures = 0
                except (httpx2.HTTPError, UpstreamAuthError) as exc:
                    failures += 1
                    _log.debug("[%s] the subscriptions/listen stream dropped: %r", self._server, exc)
                await trio.sleep(_REOPEN_DELAY)
                request = self._renewed()
            if request is None:
                return
            _log.warning("[%s] subscriptions/listen keeps failing: no list changes from it", self._server)

    async def _listen(self, request: Send) -> bool:
        """One listen request, read to its end; False if the server refused it."""
        headers = {"accept": _ACCEPT, "content-type": "application/json", **request.headers}
        async with self._client.stream("POST", self._url, content=request.body, headers=headers) as response:
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
                return not event.data or await self._heard(event.data.encode())

            await each_event(response, take)
        return True
