"""Builds the supervision tree of design.md §3 from a config and runs it.

    root (one_for_one)
    ├── audit           AuditActor (when auditing): first to start, last to stop
    ├── notifications   NotificationActor
    ├── router          RouterActor
    ├── upstreams       Supervisor(one_for_one, parallel start), one UpstreamActor per server
    └── clients         Supervisor(one_for_one), one temporary ClientActor per attach session

In ``watchgate run`` the one stdio client *is* the session (``serve_stream``): when it goes away
the gateway shuts down, children stopped in reverse order, every process reaped. The daemon
runs the tree (``run``) and attaches clients as they come (``attach_client``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from actors import Backoff, ChildSpec, RestartPolicy, RestartType, Supervisor, SupervisorEvent
from watchgate.audit import AuditActor, AuditEntry, lifecycle_entry, resolved_audit_config, supervisor_entry
from watchgate.audit.hooks import AuditHooks
from watchgate.config.schema import GatewayConfig, ItemRules, ResourceRules, UpstreamConfig
from watchgate.errors import exit_reason
from watchgate.gateway.approvals import Approvals
from watchgate.gateway.callrates import CallRates
from watchgate.gateway.client import ClientActor
from watchgate.gateway.messages import (
    AddUpstream,
    ClientAttached,
    Recurate,
    RefreshLists,
    RemoveUpstream,
    SetProfiles,
    UpstreamStatus,
)
from watchgate.gateway.notifications import NotificationActor
from watchgate.gateway.ports import ClientChannel
from watchgate.gateway.router.actor import RouterActor
from watchgate.gateway.shared_approvals import SharedApprovals
from watchgate.gateway.upstreams.actor import UpstreamActor
from watchgate.hooks import HookChain, MessageHooks
from watchgate.plugins.pipeline import build_plugins
from watchgate.protocol.catalog import LIST_KINDS
from watchgate.protocol.curation import Curation
from watchgate.protocol.identity import ANONYMOUS, Principal
from watchgate.transports.base import Connector
from watchgate.transports.connectors import default_connector
from watchgate.wire.lines import LineChannel

if TYPE_CHECKING:
    from watchgate.telemetry import Telemetry

_log = logging.getLogger("watchgate.gateway")


def audit_actor(config: GatewayConfig, *, path: str | None = None) -> AuditActor | None:
    """The audit log the config asks for (paths relative to the config file), or None; ``path``
    puts it elsewhere (`watchgate run --audit-log`). Claimed at once: a log another gateway
    writes raises `AuditLogInUse` before anything starts."""
    if not config.audit.enabled:
        return None
    audit_config = resolved_audit_config(config)
    if path is not None:
        audit_config = msgspec.structs.replace(audit_config, path=os.path.abspath(os.path.expanduser(path)))
    actor = AuditActor(audit_config)
    actor.claim()
    return actor


def unknown_profile(config: GatewayConfig, name: str) -> str:
    """What a client that asked for a profile the config does not have is told."""
    known = ", ".join(config.profiles) or "none configured"
    return f"unknown profile {name!r} (known: {known})"


def restart_policy(config: UpstreamConfig) -> RestartPolicy:
    b = config.backoff
    return RestartPolicy(
        restart=RestartType(config.restart),
        max_restarts=config.max_restarts,
        within_seconds=config.within_seconds,
        backoff=Backoff(initial=b.initial, max=b.max, multiplier=b.multiplier, jitter=b.jitter),
        reset_after=config.reset_after,
    )


class Gateway:
    def __init__(
        self,
        config: GatewayConfig,
        *,
        connector: Connector = default_connector,
        hooks: HookChain | None = None,
        extra_hooks: Sequence[MessageHooks] = (),
        audit: AuditActor | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        """``hooks``: the message hooks every actor calls, exactly as given; by default the
        plugins of ``config`` (rebuilt on reload), then ``extra_hooks``, then telemetry, then
        the audit log. ``audit``: the audit actor (see ``audit_actor``); None records nothing.
        ``telemetry``: given (the tests' in-memory exporters) or started from ``config``."""
        proxy = config.proxy
        self.config = config
        self.audit = audit
        self.plugins: MessageHooks | None = None
        self._owns_plugins = hooks is None
        self._owns_telemetry = telemetry is None and config.telemetry is not None
        if self._owns_telemetry:
            from watchgate.telemetry import start_telemetry  # the SDK loads only when asked for

            assert config.telemetry is not None
            telemetry = start_telemetry(config.telemetry, self._telemetry_counts)
        self.telemetry = telemetry
        #: calls per server and tool over the last hour (the console's charts)
        self.call_rates = CallRates()
        if hooks is None:
            self.plugins = build_plugins(config)
            recorder = [AuditHooks(audit, include_payloads=config.audit.include_payloads)] if audit else []
            observer = [telemetry.hooks] if telemetry is not None else []
            chain = [
                *([self.plugins] if self.plugins is not None else []),
                *extra_hooks,
                *observer,
                *recorder,
            ]
            # counted only where calls pass hooks anyway: never off the fast path of an empty chain
            hooks = HookChain([*chain, self.call_rates] if chain else [])
        self.hooks = hooks
        self._prefixed = set(proxy.prefixed)  # shared with the notifier, updated on reload
        self.notifier = NotificationActor(prefixed=self._prefixed, hooks=hooks)
        #: tool calls held for a person's approval (approvals:), recorded in the audit log
        state = config.proxy.state
        shared = SharedApprovals(state.redis) if state is not None and config.approvals else None
        self.approvals = Approvals(config.approvals, record=self._record, shared=shared)
        self.router = RouterActor(
            proxy,
            notifier=self.notifier,
            hooks=hooks,
            profiles=config.profiles,
            discovery=config.discovery,
            access=config.access,
            approvals=self.approvals,
        )
        self._connector = connector
        children = [self._upstream_child(u) for u in proxy.upstreams]
        self.upstreams = {actor.name: actor for actor, _ in children}
        self.router.attach_upstreams(self.upstreams)
        self.upstream_supervisor = Supervisor(
            "upstreams", [spec for _, spec in children], parallel_start=True, on_event=self._on_upstream_event
        )
        self.clients = Supervisor("clients", on_event=self._on_client_event)
        self._sessions: dict[str, ClientSession] = {}
        self.root = Supervisor(
            "root",
            [
                *([ChildSpec("audit", audit.run)] if audit else []),
                ChildSpec("notifications", self.notifier.run),
                ChildSpec("router", self.router.run),
                ChildSpec("upstreams", self.upstream_supervisor.run),
                ChildSpec("clients", self.clients.run),
            ],
            on_event=self._on_root_event,
        )
        self.started_at: float | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the tree until cancelled (the daemon); started once every child has started."""
        self.started_at = trio.current_time()
        try:
            await self.root.run(task_status=task_status)
        finally:
            await self._stop_telemetry()

    def _telemetry_counts(self) -> dict[str, tuple[int, int]]:
        """Per server: restarts, requests in flight (read by the SDK's exporting thread)."""
        upstreams = dict(self.upstreams)
        return {
            status.name: (status.restarts, upstreams[status.name].in_flight)
            for status in list(self.upstream_supervisor.statuses())
            if status.name in upstreams
        }

    async def _stop_telemetry(self) -> None:
        """Flush what telemetry still holds (a collector that does not answer costs 5 s at most)."""
        telemetry = self.telemetry
        if telemetry is None or not self._owns_telemetry:
            return
        self.telemetry = None
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await trio.to_thread.run_sync(telemetry.shutdown, abandon_on_cancel=True)

    async def attach_client(
        self,
        receive: trio.abc.ReceiveStream,
        send: trio.abc.SendStream,
        *,
        peer_pid: int | None = None,
        profile: str | None = None,
        principal: Principal = ANONYMOUS,
    ) -> bool:
        """One client session as a temporary child of the clients supervisor; returns when it
        ends, True if the client ended it (closed its input), False if the gateway did."""
        return await self.attach_channel(
            LineChannel(send, receive), peer_pid=peer_pid, profile=profile, principal=principal
        )

    async def attach_channel(
        self,
        channel: ClientChannel,
        *,
        peer_pid: int | None = None,
        peer: str | None = None,
        profile: str | None = None,
        principal: Principal = ANONYMOUS,
        listens_only: bool = False,
    ) -> bool:
        """``attach_client`` on any client channel (an HTTP session's); ``peer`` says who it is
        when no pid does (an HTTP client's address); ``profile``: the one it chose (checked by
        the caller with `has_profile`); ``listens_only``: a 2026-07-28 subscription's own
        client, which hears broadcasts only through it."""
        client = self._new_client(channel, profile=profile, principal=principal, listens_only=listens_only)
        session = ClientSession(client, peer_pid, trio.current_time(), peer=peer)
        who = f"{peer if peer is not None else f'pid {peer_pid}'}, {principal.name} ({principal.proven_by})"
        self._record(lifecycle_entry("client_attached", client=client.name, reason=who))
        self._sessions[client.name] = session
        await self.notifier.tell(ClientAttached(client))

        async def run_client(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                await client.run(task_status=task_status)
            finally:
                session.done.set()

        try:
            await self.clients.add_child(
                ChildSpec(client.name, run_client, RestartPolicy(RestartType.TEMPORARY))
            )
            await session.done.wait()
            return client.client_left
        finally:
            with trio.CancelScope(shield=True):
                self._sessions.pop(client.name, None)
                if client.name in self.clients.names():
                    # RuntimeError: the gateway is shutting down and stops every client itself
                    with contextlib.suppress(RuntimeError):
                        await self.clients.remove_child(client.name)

    def one_request(
        self,
        channel: ClientChannel,
        *,
        profile: str | None = None,
        peer: str | None = None,
        principal: Principal = ANONYMOUS,
    ) -> OneRequest:
        """A client that lives for one request (a 2026-07-28 client over HTTP), outside the
        clients supervisor and unseen by the notification actor (nothing is broadcast to it).
        The caller serves it in its own task (`OneRequest.take`) and ends it (`OneRequest.end`);
        only a call parked on ``input_required`` gives it a task (`OneRequest.keep`). ``ps
        --clients`` shows it meanwhile; it attaches and leaves without a log line or lifecycle
        record (one per request would say nothing)."""
        client = self._new_client(channel, profile=profile, one_request=True, principal=principal)
        session = ClientSession(client, None, trio.current_time(), peer=peer, one_request=True)
        self._sessions[client.name] = session
        return OneRequest(client, lambda: self._request_over(session))

    def _request_over(self, session: ClientSession) -> None:
        self._sessions.pop(session.client.name, None)
        session.done.set()

    def has_profile(self, name: str) -> bool:
        return name in self.config.profiles

    def unknown_profile(self, name: str) -> str:
        return unknown_profile(self.config, name)

    async def end_sessions(self, reason: str, *, within: float = 2.0) -> None:
        """Answer what is still in flight (-32003 with ``reason``), then end every session once
        its answers are written (each client gets at most a second for that)."""
        for actor in self.upstreams.values():
            await actor.answer_in_flight(reason)
        await self.approvals.withdraw_all(reason)  # held calls: answered, not forgotten
        for session in self.sessions():
            session.client.end()
        with trio.move_on_after(within):
            for session in self.sessions():
                await session.done.wait()

    def _new_client(self, channel: ClientChannel, **options: Any) -> ClientActor:
        """A client actor on ``channel``, routed through this gateway's router."""
        return ClientActor(channel, router=self.router, routes=self.router.requests, **options)

    def sessions(self) -> list[ClientSession]:
        return list(self._sessions.values())

    def _upstream_child(self, config: UpstreamConfig) -> tuple[UpstreamActor, ChildSpec]:
        actor = UpstreamActor(
            self._without_the_audit_log(config),
            router=self.router,
            notifier=self.notifier,
            prefixed=config.name in self.config.proxy.prefixed,
            connector=self._connector,
            hooks=self.hooks,
        )
        return actor, ChildSpec(config.name, actor.run, restart_policy(config))

    def _without_the_audit_log(self, config: UpstreamConfig) -> UpstreamConfig:
        """A sandboxed server does not see the audit log (wherever it is: outside the home folder
        and /tmp it would otherwise be readable), nor its rotated files and lock."""
        sandbox = config.sandbox
        if sandbox is None or not sandbox.enabled or self.audit is None or not self.audit.config.enabled:
            return config
        log = self.audit.config.path
        folder = os.path.dirname(log)
        names = [log]
        with contextlib.suppress(OSError):
            base = os.path.basename(log)
            names += [os.path.join(folder, n) for n in os.listdir(folder) if n.startswith(f"{base}.")]
        hidden = msgspec.structs.replace(sandbox, hide=(*sandbox.hide, *dict.fromkeys(names)))
        return msgspec.structs.replace(config, sandbox=hidden)

    async def reload(self, config: GatewayConfig) -> dict[str, list[str]]:
        """Apply a new config: added servers start, removed ones stop, changed ones restart;
        untouched servers keep running and their clients notice nothing but a list_changed."""
        old = {u.name: u for u in self.config.proxy.upstreams}
        old_profiles = self.config.profiles
        old_rules = (self.config.discovery, self.config.access)
        new = {u.name: u for u in config.proxy.upstreams}
        renamed = sorted(
            name
            for name in old.keys() & new.keys()
            if (name in config.proxy.prefixed) != (name in self._prefixed)
        )
        if renamed:
            raise RuntimeError(
                f"reload cannot change whether {', '.join(map(repr, renamed))} carry their prefix (every "
                "public name would change under its clients); use `watchgate down` and `watchgate up`"
            )
        if config.proxy.state != self.config.proxy.state:
            raise RuntimeError(
                "reload cannot change proxy.state (where rate limits are shared); "
                "use `watchgate down` and `watchgate up`"
            )
        removed = [name for name in old if name not in new]
        added = [name for name in new if name not in old]
        # a change of a server's plugins or tool manager rules alone does not restart it
        changed = [name for name in new if name in old and _process_of(new[name]) != _process_of(old[name])]
        recurated = [
            name
            for name in new
            if name in old and name not in changed and _curation_of(new[name]) != _curation_of(old[name])
        ]
        # its own plugins or tool manager rules changed, applied without a restart
        rules = [
            name
            for name in new
            if name in old
            and name not in changed
            and (name in recurated or new[name].plugins != old[name].plugins)
        ]
        profiles = sorted(
            name
            for name in old_profiles.keys() | config.profiles.keys()
            if old_profiles.get(name) != config.profiles.get(name)
        )
        plugins = ["plugins"] if config.plugins != self.config.plugins else []
        replugged = self._reload_plugins(config)
        for name in removed + changed:
            await self.upstream_supervisor.remove_child(name)
            await self.router.tell(RemoveUpstream(name))
            del self.upstreams[name]
        self.config = config
        self._prefixed.clear()
        self._prefixed.update(config.proxy.prefixed)
        for name in changed + added:
            actor, spec = self._upstream_child(new[name])
            self.upstreams[name] = actor
            await self.router.tell(AddUpstream(actor, prefixed=name in self._prefixed))
            await self.upstream_supervisor.add_child(spec)
        for name in recurated:
            await self.router.tell(Recurate(name, Curation.of(new[name])))
        if config.profiles != old_profiles or (config.discovery, config.access) != old_rules:
            await self.router.tell(SetProfiles(config.profiles, config.discovery, config.access))
        self.approvals.configure(config.approvals)  # held calls keep the rule they were held by
        running = [name for name in new if name not in added and name not in changed]
        if replugged:  # lists are filtered by plugins: let every running server's lists pass again
            for name in running:
                await self.router.tell(RefreshLists(name, tuple(LIST_KINDS)))
        unchanged = [name for name in running if name not in rules]
        summary = (
            f"added {added}, removed {removed}, changed {changed}, rules changed {rules}, "
            f"profiles changed {profiles}{', global plugins changed' if plugins else ''}"
        )
        _log.info("reloaded: %s", summary)
        self._record(lifecycle_entry("config_reloaded", reason=summary))
        return {
            "added": added,
            "removed": removed,
            "changed": changed,  # restarted
            "rules": rules,  # the server's plugins or tool manager rules: applied, not restarted
            "profiles": profiles,
            "plugins": plugins,  # the global plugins
            "unchanged": unchanged,
        }

    def _reload_plugins(self, config: GatewayConfig) -> bool:
        """Rebuild the plugins from ``config`` (when this gateway built them); True if it did."""
        if not self._owns_plugins or (
            not config.plugins and self.plugins is None and not _any_server_plugins(config)
        ):
            return False
        others = [
            hook for hook in self.hooks.hooks if hook is not self.plugins and hook is not self.call_rates
        ]
        self.plugins = build_plugins(config)
        chain = [*([self.plugins] if self.plugins is not None else []), *others]
        self.hooks.set([*chain, self.call_rates] if chain else [])
        return True

    def _record(self, entry: AuditEntry) -> None:
        if self.audit is not None:
            self.audit.record_nowait(entry)

    def _on_root_event(self, event: SupervisorEvent) -> None:
        _log_event(event)
        self._record(supervisor_entry(event, subject="actor"))

    def _on_client_event(self, event: SupervisorEvent) -> None:
        _log_event(event)
        if event.kind in ("started", "exited"):
            self._record(supervisor_entry(event, subject="client"))

    def _on_upstream_event(self, event: SupervisorEvent) -> None:
        _log_event(event)
        self._record(supervisor_entry(event, subject="server"))
        actor = self.upstreams.get(event.child)
        if actor is not None and event.kind in ("started", "exited", "backoff", "failed", "stopped"):
            delay = f"restart in {event.delay:.2f} s" if event.delay is not None else ""
            detail = exit_reason(event.reason) or delay
            actor.log.append(f"{event.kind} {detail}".strip(), "event")
        try:
            self.router.tell_nowait(UpstreamStatus(event.child, event.kind, event.reason))
        except (
            Exception
        ):  # the router's mailbox is full: ps and errors may lag, but never block the supervisor
            _log.exception("[%s] could not report %s to the router", event.child, event.kind)

    async def serve_stream(
        self,
        receive: trio.abc.ReceiveStream,
        send: trio.abc.SendStream,
        *,
        profile: str | None = None,
        principal: Principal = ANONYMOUS,
    ) -> None:
        """Run the whole tree for one client on a byte stream; return when the client leaves."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.root.run)
            linger = max((u.request_timeout for u in self.config.proxy.upstreams), default=0.0)
            client = self._new_client(
                LineChannel(send, receive),
                linger=linger + self.config.proxy.startup_wait,
                profile=profile,
                principal=principal,
            )
            await self.notifier.tell(ClientAttached(client))
            try:
                await client.run()
            finally:
                await self._stop_telemetry()
            nursery.cancel_scope.cancel()


class OneRequest:
    """A 2026-07-28 request's client (`Gateway.one_request`), as its listener serves it: the
    listener names no actor class (only this module does)."""

    __slots__ = ("_client", "_over")

    def __init__(self, client: ClientActor, over: Callable[[], None]) -> None:
        self._client = client
        self._over = over

    async def take(self, line: bytes) -> None:
        """Read the request in the caller's task."""
        await self._client.take(line)

    async def end(self) -> None:
        """The request is over (answered, or its client left: then what it has in flight is
        cancelled upstream)."""
        try:
            await self._client.leave()
        finally:
            self._over()

    async def keep(self) -> None:
        """Its call parked: the client runs in the caller's (long-lived) task until the retry
        is answered, the call expires, or the channel ends."""
        try:
            await self._client.run()
        finally:
            self._over()


@dataclass
class ClientSession:
    client: ClientActor
    peer_pid: int | None
    attached_at: float
    done: trio.Event = field(default_factory=trio.Event)
    peer: str | None = None  # an HTTP client's address
    one_request: bool = False  # a 2026-07-28 client's request over HTTP: it lives as long as that


def _process_of(config: UpstreamConfig) -> UpstreamConfig:
    """What running the server depends on: its config without the plugins and the tool manager."""
    return msgspec.structs.replace(
        config, plugins=(), tools=ItemRules(), prompts=ItemRules(), resources=ResourceRules()
    )


def _curation_of(config: UpstreamConfig) -> tuple[ItemRules, ItemRules, ResourceRules]:
    return config.tools, config.prompts, config.resources


def _any_server_plugins(config: GatewayConfig) -> bool:
    return any(u.plugins for u in config.proxy.upstreams)


def _log_event(event: SupervisorEvent) -> None:
    if event.kind == "exited" and event.reason not in (None, "normal", "shutdown"):
        _log.warning("[%s] exited: %s", event.child, exit_reason(event.reason))
    elif event.kind == "backoff":
        _log.warning("[%s] restarting in %.2f s", event.child, event.delay or 0.0)
    elif event.kind == "failed":
        _log.error(
            "[%s] failed: too many restarts, staying down until restarted (%s)",
            event.child,
            exit_reason(event.reason),
        )
    else:
        _log.debug("[%s] %s %s", event.child, event.kind, event.reason or "")
