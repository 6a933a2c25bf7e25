"""What a server sends on its own, outside the answers to the gateway's requests.

Progress goes to the client of the call it names (its token swapped back), a server's
``notifications/cancelled`` to the client it asked, a ``list_changed`` to the router (which
lists the server again and tells the clients), every other notification to the notification
actor; a server's request is answered here (``ping``) or handed, under an id of the gateway's,
to the one client whose call it belongs to (ADR-025), or refused saying why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from msgspec import UNSET

from watchgate.errors import JsonRpcError
from watchgate.gateway.messages import RefreshLists, UpstreamNotification
from watchgate.gateway.ports import ClientPort, NotifierPort, RouterPort, UpstreamPort
from watchgate.gateway.upstreams.inflight import InFlightTable
from watchgate.gateway.upstreams.session import ServerRequests, cannot_ask
from watchgate.hooks import HookChain
from watchgate.protocol import jsonrpc
from watchgate.protocol.catalog import LIST_CHANGED
from watchgate.protocol.jsonrpc import Line, Message, error_response

__all__ = ["ServerInitiated"]


class ServerInitiated:
    def __init__(
        self,
        actor: UpstreamPort,
        inflight: InFlightTable,
        asked: ServerRequests,
        write: Callable[[Sequence[Line]], Awaitable[None]],
        *,
        router: RouterPort,
        notifier: NotifierPort,
        prefixed: bool,
        hooks: HookChain,
    ) -> None:
        self._actor = actor
        self._name = actor.name
        self._inflight = inflight
        self._asked = asked
        self._write = write
        self._router = router
        self._notifier = notifier
        self._prefixed = prefixed
        self._hooks = hooks

    async def notification(self, msg: Message) -> None:
        """A notification: progress to its call's client, a cancellation of a question, a
        list change to the router (which lists again), anything else to the notifier."""
        if msg.method == "notifications/progress":
            await self._progress(msg)
        elif msg.method == "notifications/cancelled":
            await self._cancelled(msg)
        elif isinstance(msg.method, str) and (kinds := LIST_CHANGED.get(msg.method)) is not None:
            await self._router.tell(RefreshLists(self._name, kinds))  # the router lists it again
        else:
            await self._notifier.tell(UpstreamNotification(self._name, msg))

    async def _progress(self, msg: Message) -> None:
        fields = jsonrpc.params_fields(msg)
        token = jsonrpc.load(fields.get("progressToken", UNSET))
        pending = self._inflight.get(token) if isinstance(token, int) else None
        if pending is None or pending.client is None or pending.progress_token is None:
            return  # progress for a request that is already answered or cancelled
        fields["progressToken"] = jsonrpc.raw(pending.progress_token)
        out = msg.with_params(jsonrpc.raw_fields(fields))
        if not self._hooks.empty:
            checked = await self._hooks.on_notification(
                self._name, self._name if self._prefixed else None, out
            )
            if checked is None:
                return
            out = checked
        await pending.client.send(out)

    async def _cancelled(self, msg: Message) -> None:
        fields = jsonrpc.params_fields(msg)
        upstream_id = jsonrpc.load(fields.get("requestId", UNSET))
        for client, request_id in self._asked.cancelled(upstream_id):
            fields["requestId"] = jsonrpc.raw(request_id)
            await client.send(msg.with_params(jsonrpc.raw_fields(fields)))

    async def request(self, msg: Message) -> None:
        """A request: ``ping`` answered here, a question to the client whose call asks it."""
        assert msg.id is not None and msg.id is not UNSET and msg.method is not UNSET
        if msg.method == "ping":
            await self._write([jsonrpc.encode_line(jsonrpc.result_response(msg.id, {}))])
            return
        method, server_id = msg.method, msg.id
        msg, related = jsonrpc.pop_related(msg)
        client, refusal = self._asked_of(method, related)
        refusal = refusal or cannot_ask(self._name, method, client)
        if refusal is not None:
            await self._write([jsonrpc.encode_line(error_response(server_id, refusal))])
            return
        assert client is not None  # refused above when there is none
        request_id = self._asked.open(client, server_id)
        client.expect_answer(request_id, self._actor)
        await client.send(msg.with_id(request_id))

    def _asked_of(self, method: str, related: object) -> tuple[ClientPort | None, JsonRpcError | None]:
        """Whose call a server's question belongs to, never a guess across clients (ADR-025): the
        call whose stream it came on (HTTP), else the one client with calls in flight here; with
        several, the server is told no (over stdio nothing says which call asks)."""
        pending = self._inflight.get(related) if isinstance(related, int) else None
        if pending is not None and pending.client is not None:
            return pending.client, None
        clients = self._inflight.clients()
        if len(clients) > 1:
            why = (
                f"{len(clients)} clients have calls in flight on {self._name!r} and nothing says "
                f"whose call this {method} belongs to; Watchgate does not guess"
            )
            return None, JsonRpcError(jsonrpc.INVALID_REQUEST, why)
        return (clients[0] if clients else None), None
