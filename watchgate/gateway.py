"""Builds the supervision tree of DESIGN.md section 3 from a config and runs it.

    root (one_for_one)
    ├── notifications   NotificationActor
    ├── router          RouterActor
    └── upstreams       Supervisor(one_for_one, parallel start), one UpstreamActor per server

Clients are not supervised children here: in ``watchgate run`` the one stdio client *is* the
session, and when it goes away the gateway shuts down (children stopped in reverse order, every
process reaped).
"""

from __future__ import annotations

import logging

import trio

from actors import Backoff, ChildSpec, RestartPolicy, RestartType, Supervisor, SupervisorEvent
from watchgate.client import ClientActor
from watchgate.config import GatewayConfig, UpstreamConfig
from watchgate.connection import Connector, default_connector
from watchgate.messages import ClientAttached, UpstreamStatus
from watchgate.notifications import NotificationActor
from watchgate.router import RouterActor
from watchgate.upstream import UpstreamActor

_log = logging.getLogger("watchgate.gateway")


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
    def __init__(self, config: GatewayConfig, *, connector: Connector = default_connector) -> None:
        proxy = config.proxy
        self.config = config
        self.notifier = NotificationActor(multi_server=proxy.multi_server)
        self.router = RouterActor(proxy, notifier=self.notifier)
        self.notifier.attach_router(self.router)
        self.upstreams = {
            u.name: UpstreamActor(
                u,
                router=self.router,
                notifier=self.notifier,
                multi_server=proxy.multi_server,
                connector=connector,
            )
            for u in proxy.upstreams
        }
        self.router.attach_upstreams(self.upstreams)
        self.upstream_supervisor = Supervisor(
            "upstreams",
            [
                ChildSpec(name, actor.run, restart_policy(actor.config))
                for name, actor in self.upstreams.items()
            ],
            parallel_start=True,
            on_event=self._on_upstream_event,
        )
        self.root = Supervisor(
            "root",
            [
                ChildSpec("notifications", self.notifier.run),
                ChildSpec("router", self.router.run),
                ChildSpec("upstreams", self.upstream_supervisor.run),
            ],
            on_event=_log_event,
        )

    def _on_upstream_event(self, event: SupervisorEvent) -> None:
        _log_event(event)
        try:
            self.router.tell_nowait(UpstreamStatus(event.child, event.kind, event.reason))
        except (
            Exception
        ):  # the router's mailbox is full: ps and errors may lag, but never block the supervisor
            _log.exception("[%s] could not report %s to the router", event.child, event.kind)

    async def serve_stream(self, receive: trio.abc.ReceiveStream, send: trio.abc.SendStream) -> None:
        """Run the whole tree for one client on a byte stream; return when the client leaves."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.root.run)
            client = ClientActor(receive, send, router=self.router)
            await self.notifier.tell(ClientAttached(client))
            await client.run()
            nursery.cancel_scope.cancel()


def _log_event(event: SupervisorEvent) -> None:
    if event.kind == "exited" and event.reason not in (None, "normal", "shutdown"):
        _log.warning("[%s] exited: %s", event.child, event.reason)
    elif event.kind == "backoff":
        _log.warning("[%s] restarting in %.2f s", event.child, event.delay or 0.0)
    elif event.kind == "failed":
        _log.error(
            "[%s] failed: too many restarts, staying down until restarted (%s)", event.child, event.reason
        )
    else:
        _log.debug("[%s] %s %s", event.child, event.kind, event.reason or "")
