"""``subscriptions/listen`` for 2026-07-28 clients over HTTP: one long-lived event stream.

The subscription is the client actor's, as on stdio (``gateway/era/``: the filter, the
upstream subscriptions, the acknowledgment, the tagged notifications, the graceful closure):
its actor is attached like a legacy session's, so the notification actor broadcasts to it, and
it hears them only through the subscription. This serves what the actor writes as the stream's
events. The client closing the stream ends the subscription (the actor's session ends, which
releases its upstream subscriptions); the gateway ending it (shutdown) writes the answer to the
listen request, which ends the stream.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import trio

from watchgate.gateway.tree import Gateway
from watchgate.listeners.http.asgi import Receive, Send, serve_events, sse_event
from watchgate.listeners.http.request import RequestChannel
from watchgate.listeners.http.streams import EventLog
from watchgate.protocol import jsonrpc
from watchgate.protocol.identity import ANONYMOUS, Principal

__all__ = ["serve_listen"]


async def serve_listen(
    gateway: Gateway,
    msg: jsonrpc.Message,
    line: bytes,
    peer: str,
    receive: Receive,
    send: Send,
    principal: Principal = ANONYMOUS,
) -> None:
    channel = RequestChannel()
    log = await channel.post_request(msg, line)  # the actor's first line, before it runs
    async with trio.open_nursery() as nursery:

        async def attached() -> None:
            who = f"{peer} (subscriptions/listen)"
            await gateway.attach_channel(channel, peer=who, principal=principal, listens_only=True)
            channel.end()

        nursery.start_soon(attached)
        try:
            await serve_events(send, receive, _events(log))
        finally:
            channel.end()
            nursery.cancel_scope.cancel()


async def _events(log: EventLog) -> AsyncGenerator[bytes, None]:
    async for _, data in log.read_after(0):
        yield sse_event(data, None)
