"""``transport: sse``: a remote server over the legacy HTTP+SSE transport (MCP 2024-11-05).

The client GETs the server's URL and keeps that event stream open. Its first event,
``endpoint``, names where to POST messages; every answer and every message the server starts
comes back as a ``message`` event on that one stream (httpx2's ``EventSource``: no SSE parsing
here). The stream ending ends the connection, and the supervisor reconnects with its backoff.

The endpoint must be on the server's own origin: a server cannot make the gateway send its
clients' messages (and the configured headers and token) somewhere else.

``transport: http`` falls back to this by itself when a server refuses the Streamable HTTP
``initialize`` POST with 400, 404 or 405 (the spec's backward-compatibility procedure); the
connection is the same ``StreamableSession``, only where it POSTs and where answers come from
change, and ``transport: sse`` is that connection opened in this mode from the start
(``transports/streamable.py``). This module is the legacy wire itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urljoin, urlsplit

import httpx2
import trio

__all__ = ["LegacyStreamError", "each_event", "read_legacy_stream"]


class LegacyStreamError(Exception):
    """The server's event stream could not be opened or named no usable endpoint."""


def _endpoint(base: str, data: str) -> str:
    url = urljoin(base, data.strip())
    if urlsplit(url)[:2] != urlsplit(base)[:2]:
        raise LegacyStreamError(f"the server named an endpoint on another origin ({urlsplit(url).netloc})")
    return url


async def each_event(
    response: httpx2.Response, take: Callable[[httpx2.ServerSentEvent], Awaitable[bool]]
) -> None:
    """Hand each event of an SSE response to ``take`` until it returns False or the stream ends.

    Stopping early cancels the read instead of leaving the loop: the cancellation unwinds
    httpx2's nested generators, which a ``break``, ``return`` or ``raise`` would hand to the
    garbage collector (a ResourceWarning under trio).
    """
    with trio.CancelScope() as reading:
        async for event in httpx2.EventSource(response):
            if not reading.cancel_called and not await take(event):
                reading.cancel()


async def read_legacy_stream(
    client: httpx2.AsyncClient,
    url: str,
    deliver: Callable[[bytes], Awaitable[None]],
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """GET ``url``; report the POST endpoint through ``task_status`` once the server names it;
    then deliver every message until the stream ends. Raises `LegacyStreamError` (or httpx2's
    errors) when the stream cannot be opened or its first event is not an ``endpoint``."""
    problem: list[LegacyStreamError] = []
    started = False

    async def take(event: httpx2.ServerSentEvent) -> bool:
        nonlocal started
        if started:
            if event.event == "message" and event.data:
                await deliver(event.data.encode())
            return True
        if event.event != "endpoint":
            problem.append(
                LegacyStreamError(f"the stream began with a {event.event!r} event, not 'endpoint'")
            )
            return False
        try:
            endpoint = _endpoint(url, event.data)
        except LegacyStreamError as exc:
            problem.append(exc)
            return False
        task_status.started(endpoint)
        started = True
        return True

    async with client.stream("GET", url, headers={"accept": "text/event-stream"}) as response:
        kind = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if response.status_code != 200 or kind != "text/event-stream":
            path = urlsplit(url).path or "/"
            raise LegacyStreamError(f"GET {path} answered HTTP {response.status_code}, not an event stream")
        await each_event(response, take)
    if problem:
        raise problem[0]
    if not started:
        raise LegacyStreamError("the stream ended before naming an endpoint")
