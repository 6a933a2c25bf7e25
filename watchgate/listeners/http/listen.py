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
from typing import Any, Final

import msgspec
import trio

from watchgate.gateway.tree import Gateway
from watchgate.listeners.http.asgi import Receive, Send, serve_events, sse_event
from watchgate.listeners.http.session import HttpSession
from watchgate.protocol import jsonrpc

__all__ = ["serve_listen"]

SUBSCRIPTION_KEY: Final = "io.modelcontextprotocol/subscriptionId"
#: filter flag -> the notification it lets through
_FLAGS: Final = {
    "toolsListChanged": "notifications/tools/list_changed",
    "promptsListChanged": "notifications/prompts/list_changed",
    "resourcesListChanged": "notifications/resources/list_changed",
}
_UPDATED: Final = "notifications/resources/updated"


def agreed_filter(requested: Any) -> dict[str, Any]:
    """The part of the client's filter the gateway honours (unknown or malformed parts left out)."""
    if not isinstance(requested, dict):
        return {}
    agreed: dict[str, Any] = {flag: True for flag in _FLAGS if requested.get(flag) is True}
    uris = requested.get("resourceSubscriptions")
    if isinstance(uris, list) and all(isinstance(uri, str) for uri in uris):
        agreed["resourceSubscriptions"] = list(dict.fromkeys(uris))
    return agreed


def _tagged(method: str, params: dict[str, Any], subscription: int | str) -> bytes:
    meta = dict(params.get("_meta") or {})
    meta[SUBSCRIPTION_KEY] = subscription
    return jsonrpc.encode(jsonrpc.notification(method, {**params, "_meta": meta}))


async def serve_listen(
    gateway: Gateway, subscription: int | str, requested: Any, peer: str, receive: Receive, send: Send
) -> None:
    agreed = agreed_filter(requested)
    wanted = {_FLAGS[flag] for flag in _FLAGS if agreed.get(flag)}
    uris = set(agreed.get("resourceSubscriptions", ()))
    session = HttpSession(None)
    async with trio.open_nursery() as nursery:

        async def attached() -> None:
            await gateway.attach_channel(session, peer=f"{peer} (subscriptions/listen)")
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
            yield sse_event(_tagged("notifications/subscriptions/acknowledged", ack, subscription), None)
            async for _, line in session.standalone.read_after(0):
                msg = jsonrpc.decode(line)
                if not isinstance(msg.method, str) or not (msg.method in wanted or msg.method == _UPDATED):
                    continue
                params = jsonrpc.load(msg.params) if msg.params is not msgspec.UNSET else {}
                if msg.method == _UPDATED and (not isinstance(params, dict) or params.get("uri") not in uris):
                    continue
                yield sse_event(
                    _tagged(msg.method, params if isinstance(params, dict) else {}, subscription), None
                )
            # the gateway ended the subscription (shutdown): the graceful closure
            closing = {"resultType": "complete", "_meta": {SUBSCRIPTION_KEY: subscription}}
            yield sse_event(jsonrpc.encode(jsonrpc.result_response(subscription, closing)), None)

        try:
            await serve_events(send, receive, events())
        finally:
            session.end()
            nursery.cancel_scope.cancel()
