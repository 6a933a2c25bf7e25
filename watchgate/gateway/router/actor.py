"""The router actor: owns the namespace table and the list cache, answers what the gateway can
answer itself (``initialize``, ``ping``, every ``*/list``), and routes the rest to one upstream
(``forwarding.py``; the forwarded calls are routed in the client's reader, see `route_now`).

It never waits on an upstream in its own loop: list fetches run as tasks in its nursery and come
back as ``ListsFetched`` messages, so one slow server cannot stall routing to the others.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import msgspec
import trio

from actors import Actor, AskTimeout
from watchgate.config.schema import AccessRule, DiscoveryConfig, ProfileConfig
from watchgate.errors import JsonRpcError, UpstreamUnavailable
from watchgate.gateway.approvals import Approvals
from watchgate.gateway.messages import (
    AddUpstream,
    Broadcast,
    ClientDetached,
    ClientGone,
    ClientNotification,
    ClientRequest,
    ListsFetched,
    Recurate,
    RefreshLists,
    RemoveUpstream,
    SetProfiles,
    UpstreamReady,
    UpstreamStatus,
)
from watchgate.gateway.ports import ClientPort, NotifierPort, UpstreamPort
from watchgate.gateway.router.access import Access
from watchgate.gateway.router.discovery import ToolSearch
from watchgate.gateway.router.forwarding import Forwarder, UpstreamView
from watchgate.gateway.router.interests import Interests
from watchgate.gateway.router.listing import call_quietly, fetch_all
from watchgate.gateway.router.requests import Requests
from watchgate.gateway.router.shared import SharedBuckets
from watchgate.gateway.router.tasks import TaskOnlyTools
from watchgate.hooks import HookChain
from watchgate.protocol import jsonrpc
from watchgate.protocol.catalog import LIST_KINDS, Catalog, Item, wants
from watchgate.protocol.curation import Curation
from watchgate.protocol.profiles import Profile

if TYPE_CHECKING:
    from watchgate.config.schema import ProxyConfig


class _Settle:
    """startup_wait has passed: answer what waits, with whatever is up by now."""


RouterMessage = (
    ClientRequest
    | ClientNotification
    | ClientGone
    | UpstreamReady
    | UpstreamStatus
    | RefreshLists
    | ListsFetched
    | AddUpstream
    | RemoveUpstream
    | Recurate
    | SetProfiles
    | _Settle
)
_DOWN: Final = {"exited": "exited", "backoff": "backoff", "failed": "failed", "stopped": "stopped"}
_log = logging.getLogger("watchgate.router")


class RouterActor(Actor[RouterMessage]):
    def __init__(
        self,
        config: ProxyConfig,
        *,
        notifier: NotifierPort,
        hooks: HookChain | None = None,
        profiles: Mapping[str, ProfileConfig] | None = None,
        discovery: DiscoveryConfig | None = None,
        access: Sequence[AccessRule] | None = None,
        approvals: Approvals | None = None,
        mailbox_size: int = 1024,
    ) -> None:
        super().__init__("router", mailbox_size=mailbox_size)
        self.approvals = approvals if approvals is not None else Approvals()
        self._config = config
        self._notifier = notifier
        self._hooks = hooks if hooks is not None else HookChain()
        self._multi = config.multi_server
        names = [u.name for u in config.upstreams]
        self._catalog = Catalog(
            multi_server=self._multi,
            servers=names,
            prefixed=config.prefixed,
            curations={u.name: Curation.of(u) for u in config.upstreams},
        )
        self._views: dict[str, UpstreamView] = {}
        self._forwarder = Forwarder(self._catalog, self._views, self._hooks, self.profile_of, self.approvals)
        self._search = ToolSearch(self._catalog, discovery or DiscoveryConfig(), profiles or {})
        shared = SharedBuckets(config.state.redis) if config.state is not None else None
        self._access = Access(access, profiles or {}, shared)
        self._collisions: set[tuple[str, str, str]] = set()  # reported already
        self._task_only = TaskOnlyTools()
        self._nursery: trio.Nursery | None = None
        self._fetches = 0
        self._interests = Interests(
            self._catalog, self._views, notifier, self._forwarder, self.profile_of, self._call_quietly
        )
        #: what clients ask: routed here, or in their own reader for a forwarded call
        self.requests = Requests(
            self._catalog,
            self._views,
            self._forwarder,
            self._interests,
            self._search,
            self._access,
            profiles=profiles or {},
            multi_server=self._multi,
        )

    def attach_upstreams(self, upstreams: Mapping[str, UpstreamPort]) -> None:
        self._views.clear()  # in place: the forwarder holds this dict
        self._views.update({name: UpstreamView(actor) for name, actor in upstreams.items()})

    def profile_of(self, client: ClientPort) -> Profile | None:
        return self.requests.profile_of(client)

    def view(self, server: str) -> UpstreamView:
        return self._views[server]

    def tool_count(self, server: str) -> int:
        return self._catalog.count(server, "tools")

    def tool_names(self, server: str) -> list[tuple[str, str, str]]:
        """Each tool clients see: the name they call it by, that name before any prefix (renamed
        or not), and the server's own name."""
        table = self._catalog.table
        shown = self._catalog.shown_names(server, "tools")
        return [(table.public_tool(server, name), name, own) for name, own in shown]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.approvals.start(nursery)
            nursery.start_soon(self._settle_deadline)
            await self._check_settled()
            try:
                await super().run(task_status=task_status)
            finally:
                nursery.cancel_scope.cancel()
                if self._access.shared is not None:
                    with trio.CancelScope(shield=True):
                        await self._access.shared.aclose()

    async def _settle_deadline(self) -> None:
        await trio.sleep(self._config.startup_wait)
        if not self.requests.settled:
            waiting = [name for name, view in self._views.items() if not view.settled]
            _log.warning(
                "still waiting for %s after %g s; answering without them", waiting, self._config.startup_wait
            )
            await self.tell(_Settle())

    async def _check_settled(self) -> None:
        if not self.requests.settled and all(view.settled for view in self._views.values()):
            await self.requests.settle()

    async def handle(self, msg: RouterMessage) -> None:
        if isinstance(msg, _Settle):
            for view in self._views.values():
                view.settled = True
            await self._check_settled()
        elif isinstance(msg, ClientRequest):
            await self.requests.route(msg.client, msg.msg)
        elif isinstance(msg, ClientNotification):
            await self.requests.notified(msg.client, msg.msg)
        elif isinstance(msg, ClientGone):
            if not msg.settled:
                for view in self._views.values():
                    await view.actor.tell(msg)
                await self._notifier.tell(ClientDetached(msg.client_id))
            self.approvals.client_gone(msg.client_id)
            await self._interests.forget_client(msg.client_id)
        elif isinstance(msg, SetProfiles):
            self.requests.configure(msg.profiles, msg.discovery or DiscoveryConfig(), msg.access)
            await self._announce(["tools", "prompts", "resources"])  # what a profile shows may differ
        elif isinstance(msg, Recurate):
            await self._announce(self._catalog.set_curation(msg.server, msg.curation))
        elif isinstance(msg, AddUpstream | RemoveUpstream):
            await self._reconfigure(msg)
        elif isinstance(msg, UpstreamReady | UpstreamStatus | RefreshLists | ListsFetched) and (
            msg.server not in self._views
        ):
            _log.debug("ignoring %s for a server that was removed", type(msg).__name__)
        elif isinstance(msg, UpstreamReady):
            if msg.instructions and not self._hooks.empty:  # they reach the model: plugins judge them
                judged = await self._hooks.on_instructions(
                    msg.server, self._prefix(msg.server), msg.instructions
                )
                msg = dataclasses.replace(msg, instructions=judged)
            view = self._views[msg.server]
            view.state, view.ready, view.last_error = "running", msg, None
            self._interests.tell_level(self._interests.levels.current, only=msg.server)
            kinds = tuple(k for k in LIST_KINDS if wants(msg.capabilities, k))
            view.listed = not kinds
            self._fetch(msg.server, kinds)
        elif isinstance(msg, UpstreamStatus):
            await self._on_status(msg)
        elif isinstance(msg, RefreshLists):
            view = self._views[msg.server]
            if view.ready is not None:
                self._fetch(msg.server, tuple(k for k in msg.kinds if wants(view.ready.capabilities, k)))
        else:
            await self._on_lists(msg)

    # --- upstream lifecycle ----------------------------------------------------------------------
    def _report_collisions(self) -> None:
        """Two servers without prefixes that offer the same name: a config problem naming both
        (the first server in the config keeps the name; set ``prefix`` on one of them)."""
        for name, kept, hidden in self._catalog.table.collisions:
            if (name, kept, hidden) not in self._collisions:
                self._collisions.add((name, kept, hidden))
                _log.error(
                    "%r is offered by both %r and %r, neither with a prefix: %r keeps it, %r's is "
                    "hidden (set `prefix: always` on one of them)",
                    name, kept, hidden, kept, hidden,
                )  # fmt: skip

    async def _reconfigure(self, msg: AddUpstream | RemoveUpstream) -> None:
        """Config reload: a server joins or leaves; its clients see only a list_changed."""
        if isinstance(msg, AddUpstream):
            self._views[msg.actor.name] = UpstreamView(msg.actor, settled=True)
            self._catalog.add_server(
                msg.actor.name, prefixed=msg.prefixed, curation=Curation.of(msg.actor.config)
            )
        elif msg.server in self._views:
            del self._views[msg.server]
            await self._announce(self._catalog.remove_server(msg.server))

    async def _on_status(self, msg: UpstreamStatus) -> None:
        view = self._views[msg.server]
        if msg.kind == "starting":
            view.state = "starting"
            return
        if msg.kind not in _DOWN:
            return
        view.state = _DOWN[msg.kind]
        if msg.reason and msg.reason != "normal":
            view.last_error = msg.reason
        view.ready, view.listed = None, False
        view.latest_fetch.clear()  # whatever is still on its way describes a dead incarnation
        await self._announce(self._catalog.drop(msg.server))
        await self._mark_settled(view)
        if msg.kind != "exited":
            await view.actor.reject_queued(UpstreamUnavailable(msg.server, view.state, view.last_error))

    def _fetch(self, server: str, kinds: tuple[str, ...]) -> None:
        view = self._views[server]
        self._fetches += 1
        for key in kinds:
            view.latest_fetch[key] = self._fetches
        view.fetching += 1
        assert self._nursery is not None
        self._nursery.start_soon(self._fetch_lists, server, view.actor, self._fetches, kinds)

    async def _fetch_lists(
        self, server: str, actor: UpstreamPort, fetch_id: int, kinds: tuple[str, ...]
    ) -> None:
        lists: dict[str, list[Item]] = {}
        withheld: dict[str, list[Item]] = {}
        for key in kinds:
            try:
                items = await fetch_all(actor, key, actor.config.request_timeout)
            except (JsonRpcError, AskTimeout, msgspec.DecodeError) as exc:
                _log.warning("[%s] could not list %s: %s", server, key, exc)
                continue
            if key == "tools":
                items = self._task_only.without(server, items)
            if not self._hooks.empty:  # plugins hide or pin items before any client can see them
                shown = await self._hooks.on_list(server, self._prefix(server), key, items)
                # still the server's: a call reaches the plugins, which say why they refuse it
                withheld[key] = [item for item in items if item not in shown]
                items = shown
            lists[key] = items
        await self.tell(ListsFetched(server, fetch_id, lists, withheld))

    def _prefix(self, server: str) -> str | None:
        """What plugins are told of a server's public prefix: its name, or None if it has none."""
        return server if server in self._catalog.prefixed else None

    async def _on_lists(self, msg: ListsFetched) -> None:
        view = self._views[msg.server]
        view.fetching -= 1
        fresh = {key: items for key, items in msg.lists.items() if view.latest_fetch.get(key) == msg.fetch_id}
        withheld = {key: items for key, items in msg.withheld.items() if key in fresh}
        await self._announce(self._catalog.update(msg.server, fresh, withheld))
        self._report_collisions()
        if view.fetching == 0:
            view.listed = view.state == "running"
            await self._mark_settled(view)

    async def _mark_settled(self, view: UpstreamView) -> None:
        if not view.settled:
            view.settled = True
            await self._check_settled()

    async def _announce(self, kinds: list[str]) -> None:
        methods = {
            f"notifications/{'resources' if k == 'resourceTemplates' else k}/list_changed" for k in kinds
        }
        for method in sorted(methods):
            await self._notifier.tell(Broadcast(jsonrpc.notification(method)))

    def _call_quietly(self, server: str, actor: UpstreamPort, method: str, params: Any) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(call_quietly, server, actor, method, params)
