"""The calls the gateway only forwards: ``tools/call`` and ``prompts/get`` by name,
``resources/read`` and ``resources/subscribe|unsubscribe`` by URI, ``completion/complete`` by
its ``ref``. Each is resolved in the namespace table, renamed to the server's own name, checked
by the request hooks and handed to that server's actor.

Everything here only reads the router's state (the table, the servers' views), so it runs in
whichever task asks: the client's reader for a lone call, the router for the rest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio
from msgspec import UNSET, Raw

from watchgate.errors import JsonRpcError, UnknownName, UpstreamUnavailable
from watchgate.gateway.answers import answer_error
from watchgate.gateway.messages import ForwardRequest, UpstreamReady
from watchgate.gateway.ports import ClientPort, UpstreamPort
from watchgate.gateway.router.access import Slot
from watchgate.hooks import CallContext, Decision, HookChain
from watchgate.protocol import jsonrpc
from watchgate.protocol.jsonrpc import Message

if TYPE_CHECKING:
    from watchgate.gateway.approvals import Approvals
    from watchgate.protocol.catalog import Catalog
    from watchgate.protocol.profiles import Profile


@dataclass
class UpstreamView:
    """What the router knows of one upstream, learnt only from messages."""

    actor: UpstreamPort
    state: str = "starting"
    last_error: str | None = None
    ready: UpstreamReady | None = None
    settled: bool = False
    latest_fetch: dict[str, int] = field(default_factory=dict)  # per list kind: only the newest counts
    fetching: int = 0
    listed: bool = False  # this incarnation's first lists are in: what `ps` calls running

    @property
    def serving(self) -> bool:
        return self.state == "running" and self.listed


class Forwarder:
    def __init__(
        self,
        catalog: Catalog,
        views: dict[str, UpstreamView],
        hooks: HookChain,
        profile_of: Callable[[ClientPort], Profile | None] = lambda client: None,
        approvals: Approvals | None = None,
    ) -> None:
        self._catalog = catalog
        self._views = views  # the router's own dict: changed in place, never replaced
        self._hooks = hooks
        self._profile_of = profile_of  # what a client's profile lets it reach
        self._approvals = approvals  # tool calls held for a person (approvals:)

    async def by_name(
        self, client: ClientPort, msg: Message, member: str, kind: str, slot: Slot | None = None
    ) -> None:
        """``tools/call`` (kind ``tool``) or ``prompts/get`` (``prompt``), named by ``params.<member>``.
        ``slot``: the call's place under its caller's concurrency limit, handed on with it."""
        fields = jsonrpc.params_fields(msg)
        name = jsonrpc.field_str(fields, member)
        if name is None:
            raise JsonRpcError(jsonrpc.INVALID_PARAMS, f"params.{member} is required")
        catalog = self._catalog
        try:
            server, own = catalog.resolve_tool(name) if kind == "tool" else catalog.resolve_prompt(name)
            self._check_profile(client, kind, server, name)
        except UnknownName as refused:
            raise await self.refused(client, msg, name, refused) from None
        if own != name:
            fields[member] = jsonrpc.raw(own)
            msg = msg.with_params(jsonrpc.raw_fields(fields))
        await self.forward(server, client, msg, own, name, fields, slot)

    async def by_uri(self, client: ClientPort, msg: Message) -> bool:
        fields = jsonrpc.params_fields(msg)
        uri = jsonrpc.field_str(fields, "uri")
        if uri is None:
            raise JsonRpcError(jsonrpc.INVALID_PARAMS, "params.uri is required")
        try:
            server, own = self._catalog.resolve_uri(uri)
            self._check_profile(client, "resource", server, uri)
        except UnknownName as refused:
            raise await self.refused(client, msg, uri, refused) from None
        if own != uri:
            fields["uri"] = jsonrpc.raw(own)
            msg = msg.with_params(jsonrpc.raw_fields(fields))
        return await self.forward(server, client, msg, own, uri, fields)

    async def completion(self, client: ClientPort, msg: Message) -> None:
        fields = jsonrpc.params_fields(msg)
        ref = jsonrpc.load(fields.get("ref", UNSET))
        if not isinstance(ref, dict):
            raise JsonRpcError(jsonrpc.INVALID_PARAMS, "params.ref must be an object")
        catalog = self._catalog
        if ref.get("type") == "ref/prompt" and isinstance(ref.get("name"), str):
            member = "name"
        elif ref.get("type") == "ref/resource" and isinstance(ref.get("uri"), str):
            member = "uri"
        else:
            raise JsonRpcError(
                jsonrpc.INVALID_PARAMS,
                "params.ref must be a ref/prompt with a name or a ref/resource with a uri",
            )
        try:
            if member == "name":
                server, own = catalog.resolve_prompt(ref["name"])
            else:
                server, own = catalog.resolve_uri(ref["uri"])
            self._check_profile(client, "prompt" if member == "name" else "resource", server, ref[member])
        except UnknownName as refused:
            raise await self.refused(client, msg, ref[member], refused) from None
        public, ref[member] = ref[member], own
        fields["ref"] = jsonrpc.raw(ref)
        await self.forward(server, client, msg.with_params(jsonrpc.raw_fields(fields)), own, public, fields)

    async def refused(
        self, client: ClientPort, msg: Message, public: str, refused: UnknownName
    ) -> UnknownName:
        """A name refused here (unknown, or hidden by the tool manager or the client's profile) is
        refused naming only the servers the caller may see, and recorded (the audit log) with
        the name as called: the attempts are what an auditor looks for. Returns what to raise."""
        profile = self._profile_of(client)
        if profile is not None:
            refused = refused.seen_by(profile.visible(self._catalog.servers))
        if not self._hooks.empty:
            assert isinstance(msg.method, str) and msg.id is not None and msg.id is not UNSET
            ctx = CallContext(
                server=None,
                upstream="",  # routed nowhere
                client_id=client.client_id,
                method=msg.method,
                name=None,
                public_name=public,
                request_id=msg.id,
                started=trio.current_time(),
                request_bytes=0 if msg.params is UNSET else len(msg.params),
                decisions=[Decision(refused.refused_by, "request", "deny", refused.message)],
                principal=client.principal,
            )
            await self._hooks.on_refused(ctx, msg, refused)
        return refused

    def _check_profile(self, client: ClientPort, kind: str, server: str, public: str) -> None:
        profile = self._profile_of(client)
        if profile is not None:
            profile.check(kind, server, public, self._catalog.servers)

    async def forward(
        self,
        server: str,
        client: ClientPort,
        msg: Message,
        own: str,
        public: str,
        fields: dict[str, Raw] | None = None,
        slot: Slot | None = None,
    ) -> bool:
        """Send the request upstream; False if it was answered here instead (down, or refused).
        ``fields``: the top level of ``msg.params`` already decoded, handed on with the request."""
        view = self._views[server]
        method = msg.method
        assert isinstance(method, str) and msg.id is not None and msg.id is not UNSET
        ctx: CallContext | None = None
        if not self._hooks.empty:
            ctx = CallContext(
                server=server if server in self._catalog.prefixed else None,
                upstream=server,
                client_id=client.client_id,
                method=method,
                name=own,
                public_name=public,
                request_id=msg.id,
                started=trio.current_time(),
                request_bytes=0 if msg.params is UNSET else len(msg.params),
                principal=client.principal,
            )
            try:
                checked = await self._hooks.on_request(ctx, msg)
                if checked is not msg:  # a hook changed it: what was decoded no longer holds
                    msg, fields = checked, None
                if view.state not in ("running", "starting"):
                    raise UpstreamUnavailable(server, view.state, view.last_error)
            except JsonRpcError as exc:
                await answer_error(self._hooks, client, ctx.request_id, ctx, exc)
                return False
        elif view.state not in ("running", "starting"):  # a starting server's mailbox holds the request
            raise UpstreamUnavailable(server, view.state, view.last_error)
        request = ForwardRequest(client, msg, method, ctx, fields, slot)
        approvals = self._approvals
        if approvals is not None and approvals.enabled and method == "tools/call":
            rule = approvals.rule_for(server, public, client)
            if rule is not None:  # after the plugins' checks, before the server sees anything
                await approvals.hold(
                    rule, server, public, client, msg, *self._after_approval(server, request)
                )
                if slot is not None:
                    slot.handed_on = True  # held: the call keeps its place until it ends
                return True
        await view.actor.forward(request)
        if slot is not None:
            slot.handed_on = True
        return True

    def _after_approval(
        self, server: str, request: ForwardRequest
    ) -> tuple[Callable[[], Awaitable[None]], Callable[[JsonRpcError], Awaitable[None]]]:
        """What a held call does once decided: run (forwarded, if its server is still up) or
        be refused (answered with why, its concurrency slot freed)."""

        async def refuse(error: JsonRpcError) -> None:
            if request.slot is not None:
                request.slot.release()
            request_id = request.msg.id
            assert request_id is not None and request_id is not UNSET
            await answer_error(self._hooks, request.client, request_id, request.ctx, error)

        async def run() -> None:
            view = self._views.get(server)
            if view is None or view.state not in ("running", "starting"):
                state = "removed" if view is None else view.state
                await refuse(UpstreamUnavailable(server, state, None if view is None else view.last_error))
                return
            await view.actor.forward(request)

        return run, refuse
