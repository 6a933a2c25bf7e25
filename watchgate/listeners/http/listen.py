"""``subscriptions/listen`` for 2026-07-28 clients: one long-lived stream of the notifications
the client asked for (spec ``basic/patterns/subscriptions``).

The subscription is a client of the gateway like a legacy session: its actor is attached, so
the notification actor broadcasts list changes to it, and it subscribes upstream to each URI
of ``resourceSubscriptions`` with ``resources/subscribe`` (reference-counted by the router, as
for every client). The acknowledgment goes out once every upstream has acknowledged those
subscriptions; then each notification the filter names, tagged with the subscription's id, and
nothing else. The client closing the stream ends the subscription (its upstream subscriptions
are released); the gateway ending it (shutdown) answers the listen request first, the spec's
graceful closure.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import msgspec
import trio

from watchgate.gateway.tree import Gateway
from watchgate.listeners.http.asgi import Receive, Send, serve_events, sse_event
from watchgate.listeners.http.session import HttpSession
from watchgate.protocol import jsonrpc
from watchgate.protocol.identity import ANONYMOUS, Principal
from watchgate.protocol.subscriptions import ACKNOWLEDGED, SUBSCRIPTION_KEY, agreed_filter, tagged, wanted

__all__ = ["serve_listen"]


async def serve_listen(
    gateway: Gateway,
    subscription: int | str,
    requested: Any,
    peer: str,
    receive: Receive,
    send: Send,
    principal: Principal = ANONYMOUS,
) -> None:
    agreed = agreed_filter(requested)
    uris = set(agreed.get("resourceSubscriptions", ()))
    session = HttpSession(None)
    async with trio.open_nursery() as nursery:

        async def attached() -> None:
            await gateway.attach_channel(session, peer=f"{peer} (subscriptions/listen)", principal=principal)
            session.end()

        nursery.start_soon(attached)
        await session.post(jsonrpc.encode(jsonrpc.notification("notifications/initialized")))
        for n, uri in enumerate(sorted(uris)):
            subscribe = jsonrpc.request(f"listen-{n}", "resources/subscribe", {"uri": uri})
            log = await session.post_request(subscribe, jsonrpc.encode(subscribe))
            answers = [data async for _, data in log.read_after(0)]  # the upstream's ack, or an error
            if not answers or jsonrpc.decode(answers[-1]).is_error:  # not honoured: not acknowledged
                uris.discard(uri)
        if "resourceSubscriptions" in agreed:
            agreed["resourceSubscriptions"] = [uri for uri in agreed["resourceSubscriptions"] if uri in uris]

        async def events() -> AsyncGenerator[bytes, None]:
            ack = {"notifications": agreed}
            yield sse_event(tagged(ACKNOWLEDGED, ack, subscription), None)
            async for _, line in session.standalone.read_after(0):
                msg = jsonrpc.decode(line)
                params = jsonrpc.load(msg.params) if msg.params is not msgspec.UNSET else {}
                params = params if isinstance(params, dict) else {}
                if isinstance(msg.method, str) and wanted(agreed, msg.method, params):
                    yield sse_event(tagged(msg.method, params, subscription), None)
            # the gateway ended the subscription (shutdown): the graceful closure
            closing = {"resultType": "complete", "_meta": {SUBSCRIPTION_KEY: subscription}}
            yield sse_event(jsonrpc.encode(jsonrpc.result_response(subscription, closing)), None)

        try:
            await serve_events(send, receive, events())
        finally:
            session.end()
            nursery.cancel_scope.cancel()
