"""What clients ask of the router: each request and notification of theirs, answered or routed.

The router actor owns the namespace table and the servers' views and changes them only in
synchronous code; this reads them. So a call that is only forwarded (`FORWARDED`) is routed in
the caller's task, the client's reader (`route_now`: one task hop less per tool call), and
everything else in the router's own task through its mailbox (`route`). Lists, ``initialize``
and ``server/discover`` wait until every server had its first start (or ``startup_wait``
passed), then are answered in arrival order (`settle`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import trio
from msgspec import UNSET

from watchgate.errors import JsonRpcError
from watchgate.gateway.messages import ForwardCancel
from watchgate.gateway.ports import ClientPort
from watchgate.gateway.router.access import NOTHING, Access
from watchgate.gateway.router.discovery import ToolSearch
from watchgate.gateway.router.forwarding import Forwarder, UpstreamView
from watchgate.gateway.router.initialize import initialize_result
from watchgate.gateway.router.interests import Interests
from watchgate.gateway.upstreams.handshake import KNOWN_VERSIONS, PROTOCOL_VERSION
from watchgate.protocol import eras, jsonrpc
from watchgate.protocol.catalog import BY_METHOD, Catalog
from watchgate.protocol.discovery import CALL_TOOL, FIND_TOOLS
from watchgate.protocol.jsonrpc import Message, error_response
from watchgate.protocol.profiles import Profile, profiles_of

if TYPE_CHECKING:
    from watchgate.config.schema import AccessRule, DiscoveryConfig, ProfileConfig

__all__ = ["FORWARDED", "Requests"]

FORWARDED: Final = frozenset({"tools/call", "prompts/get", "resources/read", "completion/complete"})


class Requests:
    def __init__(
        self,
        catalog: Catalog,
        views: dict[str, UpstreamView],
        forwarder: Forwarder,
        interests: Interests,
        search: ToolSearch,
        access: Access,
        *,
        profiles: Mapping[str, ProfileConfig],
        multi_server: bool,
    ) -> None:
        self._catalog = catalog
        self._views = views  # the router's own dict: changed in place, never replaced
        self._forwarder = forwarder
        self._search = search
        self._access = access
        self._multi = multi_server
        self._profiles = profiles_of(profiles)
        self.settled = False  # every upstream had its first start attempt (or startup_wait passed)
        self._deferred: list[tuple[ClientPort, int | str, Callable[[], Any]]] = []
        self._routes: dict[str, Callable[[ClientPort, Message], Awaitable[object]]] = {
            "initialize": self._initialize,
            "server/discover": self._discover,
            "ping": self._ping,
            "tools/call": self._tools_call,
            "prompts/get": partial(forwarder.by_name, member="name", kind="prompt"),
            "resources/read": forwarder.by_uri,
            "resources/subscribe": interests.subscribe,
            "resources/unsubscribe": interests.unsubscribe,
            "completion/complete": forwarder.completion,
            "logging/setLevel": interests.set_level,
            **{method: self._list for method in BY_METHOD},
            "tools/list": self._tools_list,
        }

    def configure(
        self,
        profiles: Mapping[str, ProfileConfig],
        discovery: DiscoveryConfig,
        access: Sequence[AccessRule] | None,
    ) -> None:
        """The profiles, discovery and access rules in force (at start, and on reload)."""
        self._search.configure(discovery, profiles)
        self._access.configure(access, profiles)
        self._profiles = profiles_of(profiles)

    def profile_of(self, client: ClientPort) -> Profile | None:
        """The profile a client chose (None: it sees everything). A profile a reload removed
        shows nothing: the client asked for less, never for more. With ``access:`` rules, what
        its principal's rule allows, narrowed by that choice."""
        if self._access.enabled:
            return self._access.view(client.principal, client.profile)
        if client.profile is None:
            return None
        return self._profiles.get(client.profile) or Profile(client.profile, NOTHING)

    async def settle(self) -> None:
        """Every server had its first start: answer what waited for that, in arrival order."""
        self.settled = True
        deferred, self._deferred = self._deferred, []
        for client, request_id, answer in deferred:
            await client.send(jsonrpc.result_response(request_id, answer()))

    # --- routing -------------------------------------------------------------------------------------

    async def route_now(self, client: ClientPort, msg: Message) -> bool:
        """Route a call in the caller's task if it only needs to be forwarded; False if it
        must go through the router's mailbox."""
        if msg.method not in FORWARDED:
            return False
        await self.route(client, msg)
        return True

    async def route(self, client: ClientPort, msg: Message) -> None:
        assert isinstance(msg.method, str) and msg.id is not None and msg.id is not UNSET
        route = self._routes.get(msg.method, self._unknown_method)
        try:
            await route(client, msg)
        except JsonRpcError as exc:
            await client.send(error_response(msg.id, exc))

    async def notified(self, client: ClientPort, msg: Message) -> None:
        """A client's notification: ``initialized`` marks it, a cancellation goes upstream."""
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

    async def _after_settle(self, client: ClientPort, msg: Message, answer: Callable[[], Any]) -> None:
        """Answer now if every upstream had its first start, else once they have, in arrival order."""
        assert msg.id is not None and msg.id is not UNSET
        if self.settled:
            await client.send(jsonrpc.result_response(msg.id, answer()))
        else:
            self._deferred.append((client, msg.id, answer))

    # --- what the gateway answers itself ---------------------------------------------------------

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


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
