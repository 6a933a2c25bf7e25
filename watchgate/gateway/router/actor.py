"""The router actor: owns the namespace table and the list cache, answers what the gateway can
answer itself (``initialize``, ``ping``, every ``*/list``), and routes the rest to one upstream
(``forwarding.py``; the forwarded calls are routed in the client's reader, see `route_now`).

It never waits on an upstream in its own loop: list fetches run as tasks in its nursery and come
back as ``ListsFetched`` messages, so one slow server cannot stall routing to the others.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import msgspec
import trio
from msgspec import UNSET

from actors import Actor, AskTimeout
from watchgate.config.schema import AccessRule, DiscoveryConfig, ProfileConfig
from watchgate.errors import JsonRpcError, UpstreamUnavailable
from watchgate.gateway.messages import (
    AddUpstream,
    Broadcast,
    ClientDetached,
    ClientGone,
    ClientNotification,
    ClientRequest,
    ForwardCancel,
    ListsFetched,
    Recurate,
    RefreshLists,
    RemoveUpstream,
    SetProfiles,
    UpstreamReady,
    UpstreamStatus,
)
from watchgate.gateway.ports import ClientPort, NotifierPort, UpstreamPort
from watchgate.gateway.router.access import NOTHING, Access
from watchgate.gateway.router.discovery import ToolSearch
from watchgate.gateway.router.forwarding import Forwarder, UpstreamView
from watchgate.gateway.router.initialize import initialize_result
from watchgate.gateway.router.interests import Interests
from watchgate.gateway.router.listing import call_quietly, fetch_all
from watchgate.gateway.router.shared import SharedBuckets
from watchgate.gateway.router.tasks import TaskOnlyTools
from watchgate.gateway.upstreams.handshake import KNOWN_VERSIONS, PROTOCOL_VERSION
from watchgate.hooks import HookChain
from watchgate.protocol import eras, jsonrpc
from watchgate.protocol.catalog import BY_METHOD, LIST_KINDS, Catalog, Item, wants
from watchgate.protocol.curation import Curation
from watchgate.protocol.discovery import CALL_TOOL, FIND_TOOLS
from watchgate.protocol.jsonrpc import Message, error_response
from watchgate.protocol.profiles import Profile, profiles_of

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


FORWARDED = frozenset({"tools/call", "prompts/get", "resources/read", "completion/complete"})


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
        mailbox_size: int = 1024,
    ) -> None:
        super().__init__("router", mailbox_size=mailbox_size)
        self._profiles = profiles_of(profiles or {})
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
        self._forwarder = Forwarder(self._catalog, self._views, self._hooks, self.profile_of)
        self._search = ToolSearch(self._catalog, discovery or DiscoveryConfig(), profiles or {})
        shared = SharedBuckets(config.state.redis) if config.state is not None else None
        self._access = Access(access, profiles or {}, shared)
        self._collisions: set[tuple[str, str, str]] = set()  # reported already
        self._settled = False  # every upstream had its first start attempt (or startup_wait passed)
        self._task_only = TaskOnlyTools()
        self._deferred: list[tuple[ClientPort, int | str, Callable[[], Any]]] = []
        self._nursery: trio.Nursery | None = None
        self._fetches = 0
        self._interests = Interests(
            self._catalog, self._views, notifier, self._forwarder, self.profile_of, self._call_quietly
        )
        self._routes: dict[str, Callable[[ClientPort, Message], Awaitable[object]]] = {
            "initialize": self._initialize,
            "server/discover": self._discover,
            "ping": self._ping,
            "tools/call": self._tools_call,
            "prompts/get": partial(self._forwarder.by_name, member="name", kind="prompt"),
            "resources/read": self._forwarder.by_uri,
            "resources/subscribe": self._interests.subscribe,
            "resources/unsubscribe": self._interests.unsubscribe,
            "completion/complete": self._forwarder.completion,
            "logging/setLevel": self._interests.set_level,
            **{method: self._list for method in BY_METHOD},
            "tools/list": self._tools_list,
        }

    def attach_upstreams(self, upstreams: Mapping[str, UpstreamPort]) -> None:
        self._views.clear()  # in place: the forwarder holds this dict
        self._views.update({name: UpstreamView(actor) for name, actor in upstreams.items()})

    def profile_of(self, client: ClientPort) -> Profile | None:
        """The profile a client chose (None: it sees everything). A profile a reload removed
        shows nothing: the client asked for less, never for more. With ``access:`` rules, what
        its principal's rule allows, narrowed by that choice."""
        if self._access.enabled:
            return self._access.view(client.principal, client.profile)
        if client.profile is None:
            return None
        # a profile that no longer exists shows nothing
        return self._profiles.get(client.profile) or Profile(client.profile, NOTHING)

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
        if not self._settled:
            waiting = [name for name, view in self._views.items() if not view.settled]
            _log.warning(
                "still waiting for %s after %g s; answering without them", waiting, self._config.startup_wait
            )
            await self.tell(_Settle())

    async def _check_settled(self) -> None:
        if self._settled or not all(view.settled for view in self._views.values()):
            return
        self._settled = True
        deferred, self._deferred = self._deferred, []
        for client, request_id, answer in deferred:  # in arrival order
            await client.send(jsonrpc.result_response(request_id, answer()))

    async def handle(self, msg: RouterMessage) -> None:
        if isinstance(msg, _Settle):
            for view in self._views.values():
                view.settled = True
            await self._check_settled()
        elif isinstance(msg, ClientRequest):
            await self._on_request(msg.client, msg.msg)
        elif isinstance(msg, ClientNotification):
            await self._on_client_notification(msg.client, msg.msg)
        elif isinstance(msg, ClientGone):
            for view in self._views.values():
                await view.actor.tell(msg)
            await self._notifier.tell(ClientDetached(msg.client_id))
            await self._interests.forget_client(msg.client_id)
        elif isinstance(msg, SetProfiles):
            self._search.configure(msg.discovery or DiscoveryConfig(), msg.profiles)
            self._access.configure(msg.access, msg.profiles)
            self._profiles = profiles_of(msg.profiles)
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

    # --- client requests -------------------------------------------------------------------------
    async def route_now(self, client: ClientPort, msg: Message) -> bool:
        """Route a call in the caller's task (the client's reader) if it only needs to be
        forwarded: one task hop less per tool call. False if it must go through the mailbox.

        Forwarding reads the namespace table and the servers' states, which this actor changes
        only in synchronous code: no other task can see them halfway changed.
        """
        if msg.method not in FORWARDED:
            return False
        await self._on_request(client, msg)
        return True

    async def _on_request(self, client: ClientPort, msg: Message) -> None:
        assert isinstance(msg.method, str) and msg.id is not None and msg.id is not UNSET
        route = self._routes.get(msg.method, self._unknown_method)
        try:
            await route(client, msg)
        except JsonRpcError as exc:
            await client.send(error_response(msg.id, exc))

    async def _after_settle(self, client: ClientPort, msg: Message, answer: Callable[[], Any]) -> None:
        """Answer now if every upstream had its first start, else once they have, in arrival order."""
        assert msg.id is not None and msg.id is not UNSET
        if self._settled:
            await client.send(jsonrpc.result_response(msg.id, answer()))
        else:
            self._deferred.append((client, msg.id, answer))

    async def _initialize(self, client: ClientPort, msg: Message) -> None:
        params = jsonrpc.load(msg.params) if msg.params is not UNSET else {}
        if not isinstance(params, dict):
            raise JsonRpcError(jsonrpc.INVALID_PARAMS, "initialize params must be an object")
        requested = params.get("protocolVersion")
        client.introduce(_dict(params.get("capabilities")), _dict(params.get("clientInfo")))
        # a list or object here must not reach the frozenset (unhashable: it would crash the router)
        version = (
            requested if isinstance(requested, str) and requested in KNOWN_VERSIONS else PROTOCOL_VERSION
        )
        await self._after_settle(client, msg, lambda: self._initialize_result(version))

    def _initialize_result(self, version: str) -> dict[str, Any]:
        ready = [view.ready for view in self._views.values() if view.ready is not None]
        return initialize_result(ready, version, multi_server=self._multi, prefixed=self._catalog.prefixed)

    async def _unknown_method(self, client: ClientPort, msg: Message) -> None:
        if msg.method == "subscriptions/listen":  # without the era's _meta: a client of the older era
            raise JsonRpcError(
                jsonrpc.METHOD_NOT_FOUND,
                "subscriptions/listen is a 2026-07-28 method: give it _meta "
                "io.modelcontextprotocol/protocolVersion (older clients get notifications as they are)",
            )
        raise JsonRpcError(jsonrpc.METHOD_NOT_FOUND, f"method not found: {msg.method!r}")

    async def _discover(self, client: ClientPort, msg: Message) -> None:
        """2026-07-28: what ``initialize`` would say, as ``server/discover`` says it."""
        await self._after_settle(
            client, msg, lambda: eras.discover_result(self._initialize_result(PROTOCOL_VERSION))
        )

    async def _ping(self, client: ClientPort, msg: Message) -> None:
        await client.send(jsonrpc.result_response(msg.id, {}))  # type: ignore[arg-type]

    async def _list(self, client: ClientPort, msg: Message) -> None:
        assert isinstance(msg.method, str)
        fields = jsonrpc.params_fields(msg)
        if jsonrpc.field_str(fields, "cursor") is not None:
            raise JsonRpcError(
                jsonrpc.INVALID_PARAMS, "invalid cursor: the gateway returns every item in one page"
            )
        key = BY_METHOD[msg.method].key
        profile = self.profile_of(client)
        if profile is None:
            await self._after_settle(client, msg, lambda: self._catalog.result(key))
        else:
            await self._after_settle(client, msg, lambda: profile.result(key, self._catalog))

    async def _tools_list(self, client: ClientPort, msg: Message) -> None:
        """Every tool (list mode), the gateway's two (search mode), or those a ``query`` finds."""
        fields = jsonrpc.params_fields(msg)
        query = jsonrpc.field_str(fields, "query")
        profile = self.profile_of(client)
        if query is not None:
            limit = jsonrpc.load(fields["limit"]) if "limit" in fields else None
            await self._after_settle(client, msg, lambda: self._search.queried(profile, query, limit))
        elif self._search.searching(profile) and jsonrpc.field_str(fields, "cursor") is None:
            await self._after_settle(client, msg, lambda: self._search.listed(profile))
        else:
            await self._list(client, msg)

    async def _tools_call(self, client: ClientPort, msg: Message) -> None:
        """In search mode ``find_tools`` is answered here and ``call_tool`` becomes the call it
        names; every other call (and every call in list mode) is forwarded by its name."""
        profile = self.profile_of(client)
        searching = self._search.searching(profile)
        name = None  # decoded once, and only when something here needs it
        if self._access.enabled or searching:
            name = jsonrpc.field_str(jsonrpc.params_fields(msg), "name")
        slot = None
        if self._access.enabled:
            slot = await self._access.admit(client.principal, name or "", trio.current_time())
        try:
            if searching:
                if name == FIND_TOOLS:
                    found = self._search.find(profile, msg)  # bad arguments: -32602 now
                    await self._after_settle(client, msg, lambda: found)
                    return
                if name == CALL_TOOL:
                    msg = self._search.as_call(msg)
            await self._forwarder.by_name(client, msg, member="name", kind="tool", slot=slot)
        finally:
            if slot is not None and not slot.handed_on:
                slot.release()  # answered here (found, refused, server down): it runs no longer

    def _call_quietly(self, server: str, actor: UpstreamPort, method: str, params: Any) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(call_quietly, server, actor, method, params)

    async def _on_client_notification(self, client: ClientPort, msg: Message) -> None:
        if msg.method == "notifications/initialized":
            client.mark_initialized()  # from now on it may receive notifications
            return
        if msg.method != "notifications/cancelled":
            return  # roots/list_changed, progress: nothing upstream needs from them
        try:
            fields = jsonrpc.params_fields(msg)
        except JsonRpcError:
            return  # a notification cannot be answered; a malformed one must not crash the router
        request_id = jsonrpc.load(fields.get("requestId", UNSET))
        if not isinstance(request_id, int | str):
            return
        reason = jsonrpc.load(fields.get("reason", UNSET))
        for view in self._views.values():
            if view.state == "running":
                await view.actor.tell(
                    ForwardCancel(client, request_id, reason if isinstance(reason, str) else None)
                )


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
