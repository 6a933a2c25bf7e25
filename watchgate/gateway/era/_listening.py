"""``subscriptions/listen`` of a 2026-07-28 client on a byte stream (stdio, the daemon's socket):
what it asked to hear, and the subscriptions made for it (``protocol/subscriptions.py`` holds the
filters and tags the notifications).

A subscription's resource URIs are subscribed through the router like any client's
``resources/subscribe`` (under ids of the client actor's own); it is acknowledged once every one
is answered, with the URIs that were honoured. Cancelling it (``notifications/cancelled`` naming
it: this transport's cancellation) releases the URIs no other subscription of the client wants.
"""

from __future__ import annotations

import itertools
import weakref
from typing import Any, Protocol

from msgspec import UNSET

from watchgate.gateway.messages import ClientRequest
from watchgate.gateway.ports import ClientPort, RouterPort
from watchgate.protocol import eras, jsonrpc, subscriptions
from watchgate.protocol.jsonrpc import Line, Message
from watchgate.protocol.subscriptions import SUBSCRIPTION_KEY, Listens

__all__ = ["DeskHost", "ListenDesk"]

_listen_ids = itertools.count(1)


class DeskHost(ClientPort, Protocol):
    """What of its client a subscription desk uses."""

    def queue_line(self, line: Line) -> None:
        """Queue ``line`` for the client as it is (no era's work on it)."""


class ListenDesk:
    def __init__(self, client: DeskHost, router: RouterPort) -> None:
        self._client_ref = weakref.ref(client)  # its client owns it (through the era): no cycle
        self._router = router
        self._listens = Listens()
        self.listened = False  # it listened once: broadcasts reach it only through its subscriptions
        self._acks: dict[int | str, tuple[dict[str, Any], set[str]]] = {}  # filter, URIs still to answer
        self._internal: dict[str, tuple[int | str, str] | None] = {}  # our subscribe ids (None: unsubscribe)

    @property
    def _client(self) -> DeskHost:
        client = self._client_ref()
        assert client is not None, "a client's subscriptions are reached only through it"
        return client

    @property
    def pending(self) -> bool:
        """A subscription's own requests await their answers."""
        return bool(self._internal)

    def owns(self, msg: Message) -> bool:
        """The answer to one of the subscriptions' own requests."""
        return (
            bool(self._internal)
            and msg.method is UNSET
            and isinstance(msg.id, str)
            and msg.id in self._internal
        )

    def route(self, line: bytes) -> list[bytes]:
        """A broadcast, tagged for each subscription that asked for it."""
        return self._listens.route(line)

    def close_all(self) -> None:
        """The session ends: each open subscription gets its graceful closure."""
        for subscription in self._listens.ids():
            closing = {"resultType": "complete", "_meta": {SUBSCRIPTION_KEY: subscription}}
            self._client.queue_line(jsonrpc.encode_line(jsonrpc.result_response(subscription, closing)))

    async def open(self, msg: Message) -> None:
        """Subscribe upstream to its URIs (through the router, as any client), acknowledge once
        every one is answered, then pass it what it asked for."""
        assert isinstance(msg.id, int | str)
        subscription = msg.id
        params = eras.params_of(msg) or {}
        agreed = subscriptions.agreed_filter(params.get("notifications"))
        self.listened = True
        uris = list(agreed.get("resourceSubscriptions", ()))
        self._acks[subscription] = (agreed, set(uris))
        if not uris:
            self._acknowledge(subscription)
        for uri in uris:
            internal = f"watchgate-listen-{next(_listen_ids)}"
            self._internal[internal] = (subscription, uri)
            request = jsonrpc.request(internal, "resources/subscribe", {"uri": uri})
            await self._router.tell(ClientRequest(self._client, request))

    async def answered(self, msg: Message) -> None:
        entry = self._internal.pop(str(msg.id))
        if entry is None:  # an unsubscribe's answer: nothing waits for it
            return
        subscription, uri = entry
        agreed, pending = self._acks.get(subscription, ({}, set()))
        pending.discard(uri)
        if msg.is_error:  # not honoured: not acknowledged
            agreed["resourceSubscriptions"] = [u for u in agreed["resourceSubscriptions"] if u != uri]
        if not pending and subscription in self._acks:
            self._acknowledge(subscription)

    def _acknowledge(self, subscription: int | str) -> None:
        agreed, _ = self._acks.pop(subscription)
        self._listens.add(subscription, agreed)
        ack = subscriptions.tagged(subscriptions.ACKNOWLEDGED, {"notifications": agreed}, subscription)
        self._client.queue_line(ack + b"\n")

    async def close(self, msg: Message) -> bool:
        """``notifications/cancelled`` naming a subscription: it ends, and its URIs no other
        subscription of this client wants are released. False if it names none."""
        params = eras.params_of(msg) or {}
        subscription = params.get("requestId")
        ended = self._listens.remove(subscription)
        pending = self._acks.pop(subscription, None) if isinstance(subscription, int | str) else None
        if ended is None and pending is None:
            return False
        agreed = ended if ended is not None else (pending[0] if pending is not None else {})
        uris = set(agreed.get("resourceSubscriptions", ()))
        for uri in sorted(uris - self._listens.uris()):
            internal = f"watchgate-unlisten-{next(_listen_ids)}"
            self._internal[internal] = None
            request = jsonrpc.request(internal, "resources/unsubscribe", {"uri": uri})
            await self._router.tell(ClientRequest(self._client, request))
        return True
