"""The few ASGI moves the listener makes: read a bounded body, answer JSON, serve an SSE stream.

The server (``server/``: h11 over trio streams) parses HTTP; this module only speaks ASGI
messages. SSE events are framed by sse-starlette's ``ServerSentEvent`` (never by hand). While a
stream is served, the client's ``http.disconnect`` is watched in a task of its own: a client
that goes away ends the stream at once, whatever the stream was waiting for (the server
delivers it as soon as the socket closes).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, Final, TypeVar

import msgspec
import trio
from sse_starlette.event import ServerSentEvent

from watchgate.listeners.http.guard import Refusal
from watchgate.listeners.http.overdue import Overdue
from watchgate.listeners.http.streams import EventLog

__all__ = [
    "Receive",
    "Scope",
    "Send",
    "error_body",
    "read_body",
    "respond",
    "serve_events",
    "unless_gone",
    "until_disconnect",
]

T = TypeVar("T")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_encoder = msgspec.json.Encoder()
#: seconds a request waits for its answer before its client is watched as well (``unless_gone``)
WATCH_AFTER: Final = 0.25
SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),  # proxies must not hold events back (design.md §5)
]


def headers_of(scope: Scope) -> dict[str, str]:
    """Request headers by lower-case name (the last of repeated ones wins)."""
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}


def error_body(message: str, code: int = -32600, request_id: int | str | None = None) -> bytes:
    return _encoder.encode({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body; `Refusal` (413) past ``limit`` bytes, whatever Content-Length said.
    A body that does not arrive in time is the server's to cut off (408, ``server/``): the app
    then sees the client gone."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refusal(400, "the client went away before its body arrived")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refusal(413, f"the body is over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(
    send: Send,
    status: int,
    body: bytes = b"",
    *,
    content_type: bytes = b"application/json",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    all_headers = list(headers or [])
    if status != 204:  # a length, not chunks: the answer goes out in one write, not three
        all_headers.append((b"content-length", b"%d" % len(body)))
    if body:
        all_headers.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


def sse_event(data: bytes, event_id: str | None) -> bytes:
    return ServerSentEvent(data=data.decode(), id=event_id, event="message", sep="\n").encode()


@contextlib.asynccontextmanager
async def until_disconnect(receive: Receive) -> AsyncIterator[trio.CancelScope]:
    """A cancel scope that the client's ``http.disconnect`` cancels (the body must be read)."""
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            nursery.cancel_scope.cancel()

        nursery.start_soon(watch)
        yield nursery.cancel_scope
        nursery.cancel_scope.cancel()


async def unless_gone(
    receive: Receive,
    log: EventLog,
    ready: Callable[[], T | None],
    overdue: Overdue,
    *,
    within: float = math.inf,
) -> T | None:
    """What ``ready()`` says once it says anything but None (it is asked whenever ``log``
    changes), or None if the client goes away first; `trio.TooSlowError` past ``within``
    seconds.

    The client is watched only once ``WATCH_AFTER`` has passed (``overdue`` nudges the wait
    then, up to its `TICK` later): watching costs a task and a socket registration, more than
    the rest of a quick request's wait, and a timer of its own a cancel scope. A client that
    leaves sooner is noticed that much later (its request is still cancelled)."""
    result = ready()
    if result is not None:
        return result
    waiting = overdue.wait(min(within, WATCH_AFTER), log)
    while True:
        await log.changed()
        result = ready()
        if result is not None:
            waiting.over()
            return result
        if waiting.overdue:
            break
    if within <= WATCH_AFTER:  # its time is up, not just the quick wait's
        raise trio.TooSlowError
    with trio.fail_at(waiting.due - WATCH_AFTER + within):
        async with until_disconnect(receive):
            while (result := ready()) is None:
                await log.changed()
    return result


async def serve_events(
    send: Send,
    receive: Receive,
    events: AsyncGenerator[bytes, None],
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> bool:
    """Answer with an SSE stream of ``events`` (already framed); True if it ran to its end,
    False if the client disconnected first."""
    await send({"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *(headers or [])]})
    finished = False
    async with until_disconnect(receive), contextlib.aclosing(events):
        async for event in events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        finished = True
    return finished
