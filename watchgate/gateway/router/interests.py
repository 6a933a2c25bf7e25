"""What the attached clients asked to hear, with the I/O it takes: resource subscriptions and
log levels (the bookkeeping is ``subscriptions.py``'s).

A subscription reaches an upstream once, from the first subscriber, and is withdrawn with the
last; what a client's view hides is refused for every subscriber. Upstreams log at the most
verbose level any client asked; a client that leaves takes its subscriptions and level along.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from watchgate.errors import JsonRpcError, UnknownName
from watchgate.gateway.messages import Subscribers
from watchgate.gateway.ports import ClientPort, NotifierPort, UpstreamPort
from watchgate.gateway.router.forwarding import Forwarder, UpstreamView
from watchgate.gateway.router.subscriptions import LOG_LEVELS, LogLevels, Subscriptions
from watchgate.protocol import jsonrpc
from watchgate.protocol.catalog import Catalog
from watchgate.protocol.jsonrpc import Message
from watchgate.protocol.profiles import Profile

__all__ = ["Interests"]


class Interests:
    def __init__(
        self,
        catalog: Catalog,
        views: Mapping[str, UpstreamView],
        notifier: NotifierPort,
        forwarder: Forwarder,
        profile_of: Callable[[ClientPort], Profile | None],
        call_quietly: Callable[[str, UpstreamPort, str, Any], None],
    ) -> None:
        self._catalog = catalog
        self._views = views
        self._notifier = notifier
        self._forwarder = forwarder
        self._profile_of = profile_of
        self._call_quietly = call_quietly
        self.subscriptions = Subscriptions()  # public URI -> subscribed client ids
        self.levels = LogLevels()

    async def subscribe(self, client: ClientPort, msg: Message) -> None:
        """Counted per client: only the first subscriber reaches the upstream. What the client's
        view hides is refused for every subscriber, not only the first (a later one would get
        the updates without its request ever reaching the check on the way upstream)."""
        uri = self._uri_param(msg)
        profile = self._profile_of(client)
        if profile is not None:
            server, _ = self._catalog.resolve_uri(uri)
            try:
                profile.check("resource", server, uri, self._catalog.servers)
            except UnknownName as refused:
                raise await self._forwarder.refused(client, msg, uri, refused) from None
        first = self.subscriptions.add(uri, client.client_id)
        await self._notifier.tell(Subscribers(uri, self.subscriptions.holders(uri)))
        if not first:
            await client.send(jsonrpc.result_response(msg.id, {}))  # type: ignore[arg-type]
            return
        try:
            routed = await self._forwarder.by_uri(client, msg)
        except JsonRpcError:
            await self._release(uri, client.client_id)  # refused: this client holds nothing
            raise
        if not routed:
            await self._release(uri, client.client_id)

    async def _release(self, uri: str, client_id: int) -> None:
        self.subscriptions.remove(uri, client_id)
        await self._notifier.tell(Subscribers(uri, self.subscriptions.holders(uri)))

    async def unsubscribe(self, client: ClientPort, msg: Message) -> None:
        """Only the last subscriber's unsubscribe reaches the upstream."""
        uri = self._uri_param(msg)
        last = self.subscriptions.remove(uri, client.client_id)
        if last is not None:
            await self._notifier.tell(Subscribers(uri, self.subscriptions.holders(uri)))
        if last:
            await self._forwarder.by_uri(client, msg)
        else:
            await client.send(jsonrpc.result_response(msg.id, {}))  # type: ignore[arg-type]

    def _uri_param(self, msg: Message) -> str:
        uri = jsonrpc.field_str(jsonrpc.params_fields(msg), "uri")
        if uri is None:
            raise JsonRpcError(jsonrpc.INVALID_PARAMS, "params.uri is required")
        self._catalog.resolve_uri(uri)  # unknown server or hidden: -32602 before anything is counted
        return uri

    async def forget_client(self, client_id: int) -> None:
        """A client left: drop its subscriptions (unsubscribing upstream where it was the last) and
        its log level (telling upstreams the next most verbose level)."""
        for uri, last in self.subscriptions.forget(client_id):
            await self._notifier.tell(Subscribers(uri, self.subscriptions.holders(uri)))
            if not last:
                continue
            try:
                server, own = self._catalog.table.resolve_uri(uri)
            except UnknownName:
                continue  # its server was removed by a reload: nothing left to unsubscribe
            view = self._views.get(server)
            if view is not None and view.ready is not None:
                self._call_quietly(server, view.actor, "resources/unsubscribe", {"uri": own})
        self.tell_level(self.levels.forget(client_id))

    async def set_level(self, client: ClientPort, msg: Message) -> None:
        level = jsonrpc.field_str(jsonrpc.params_fields(msg), "level")
        if level not in LOG_LEVELS:
            raise JsonRpcError(jsonrpc.INVALID_PARAMS, f"params.level must be one of {', '.join(LOG_LEVELS)}")
        client.set_log_level(level)
        self.tell_level(self.levels.ask(client.client_id, level))
        await client.send(jsonrpc.result_response(msg.id, {}))  # type: ignore[arg-type]

    def tell_level(self, level: str | None, only: str | None = None) -> None:
        """Upstreams log at the most verbose level any client asked for; clients filter the rest."""
        if level is None:
            return
        for name, view in self._views.items():
            if (
                (only is None or name == only)
                and view.ready is not None
                and "logging" in view.ready.capabilities
            ):
                self._call_quietly(name, view.actor, "logging/setLevel", {"level": level})
