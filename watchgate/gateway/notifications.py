"""The notification actor: rewrites upstream events for clients and fans them out.

Notifications keep their MCP method names (a client does not understand a prefixed method);
in multi-server mode the source travels in ``params._meta["watchgate/server"]``, log messages get
the server as (part of) their logger, and resource URIs get the server prefix. ``*/list_changed``
is not forwarded as such: the router re-lists and announces one change once its cache is fresh,
so a client that re-lists immediately sees the new list.

Request-scoped notifications (progress, cancellation) do not come here: the upstream actor routes
them to the one client they belong to, keeping them ordered before that request's response.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any

from msgspec import UNSET

from actors import Actor
from watchgate.gateway.messages import (
    Broadcast,
    ClientAttached,
    ClientDetached,
    Subscribers,
    UpstreamNotification,
)
from watchgate.gateway.ports import ClientPort
from watchgate.gateway.router.subscriptions import LOG_LEVELS
from watchgate.hooks import HookChain
from watchgate.protocol import jsonrpc
from watchgate.protocol.jsonrpc import Message
from watchgate.protocol.namespace import public_uri

NotifierMessage = UpstreamNotification | Broadcast | ClientAttached | ClientDetached | Subscribers
_log = logging.getLogger("watchgate.notifications")


class NotificationActor(Actor[NotifierMessage]):
    def __init__(
        self, *, prefixed: Collection[str], hooks: HookChain | None = None, mailbox_size: int = 1024
    ) -> None:
        """``prefixed``: the servers whose URIs clients see as ``<server>+uri`` (kept up to date
        by the gateway on reload: the set is shared, not copied)."""
        super().__init__("notifications", mailbox_size=mailbox_size)
        self._prefixed = prefixed
        self._hooks = hooks if hooks is not None else HookChain()
        self._clients: dict[int, ClientPort] = {}
        self._subscribers: dict[str, frozenset[int]] = {}

    @property
    def client_count(self) -> int:
        return len(self._clients)

    async def handle(self, msg: NotifierMessage) -> None:
        if isinstance(msg, ClientAttached):
            self._clients[msg.client.client_id] = msg.client
        elif isinstance(msg, ClientDetached):
            self._clients.pop(msg.client_id, None)
        elif isinstance(msg, Subscribers):
            if msg.client_ids:
                self._subscribers[msg.uri] = msg.client_ids
            else:
                self._subscribers.pop(msg.uri, None)
        elif isinstance(msg, Broadcast):
            await self._broadcast(msg.msg)
        else:
            await self._from_upstream(msg.server, msg.msg)

    async def _from_upstream(self, server: str, msg: Message) -> None:
        assert isinstance(msg.method, str)
        prefixed = server in self._prefixed
        if prefixed:
            msg = _rewrite(server, msg)
        if not self._hooks.empty:
            checked = await self._hooks.on_notification(server, server if prefixed else None, msg)
            if checked is None:
                return
            msg = checked
        if msg.method == "notifications/resources/updated":
            uri = jsonrpc.load(jsonrpc.params_fields(msg).get("uri", UNSET))
            holders = self._subscribers.get(uri, frozenset()) if isinstance(uri, str) else frozenset()
            await self._broadcast(msg, lambda client: client.client_id in holders)
        elif msg.method == "notifications/message":
            rank = _rank(jsonrpc.load(jsonrpc.params_fields(msg).get("level", UNSET)))
            await self._broadcast(
                msg, lambda client: client.log_level is None or rank >= _rank(client.log_level)
            )
        else:
            await self._broadcast(msg)

    async def _broadcast(self, msg: Message, wants: Callable[[ClientPort], bool] = lambda _: True) -> None:
        line = jsonrpc.encode_line(msg)
        for client in list(self._clients.values()):
            if client.initialized and wants(client):
                await client.tell(line)


def _rank(level: object) -> int:
    """Severity order of MCP log levels; an unknown level counts as the most severe (never hidden)."""
    return LOG_LEVELS.index(level) if level in LOG_LEVELS else len(LOG_LEVELS)


def _rewrite(server: str, msg: Message) -> Message:
    try:
        fields = jsonrpc.params_fields(msg)
    except jsonrpc.JsonRpcError:
        _log.warning(
            "[%s] sent %s with params that are not an object; forwarded unchanged", server, msg.method
        )
        return msg
    meta = jsonrpc.load(fields.get("_meta", UNSET))
    meta = dict(meta) if isinstance(meta, dict) else {}
    meta["watchgate/server"] = server
    fields["_meta"] = jsonrpc.raw(meta)
    if msg.method == "notifications/message":
        logger: Any = jsonrpc.load(fields.get("logger", UNSET))
        fields["logger"] = jsonrpc.raw(f"{server}/{logger}" if isinstance(logger, str) and logger else server)
    elif msg.method == "notifications/resources/updated":
        uri = jsonrpc.load(fields.get("uri", UNSET))
        if isinstance(uri, str):
            fields["uri"] = jsonrpc.raw(public_uri(server, uri))
    return msg.with_params(jsonrpc.raw_fields(fields))
