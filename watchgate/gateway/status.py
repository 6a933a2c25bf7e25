"""What ``watchgate ps`` and the web console show of the gateway: one row per server and per
attached client, read from the supervisors' observed state and the actors' own counters (never
guessed)."""

from __future__ import annotations

import trio

from actors import ChildState, ChildStatus
from watchgate.errors import exit_reason
from watchgate.gateway.rows import ClientRow, UpstreamRow
from watchgate.gateway.tree import Gateway
from watchgate.protocol.urls import shown_host

__all__ = ["ClientRow", "UpstreamRow", "client_rows", "upstream_row", "upstream_rows"]


def upstream_rows(gateway: Gateway) -> list[UpstreamRow]:
    now = trio.current_time()
    return [upstream_row(gateway, status, now) for status in gateway.upstream_supervisor.statuses()]


def upstream_row(gateway: Gateway, status: ChildStatus, now: float) -> UpstreamRow:
    actor = gateway.upstreams[status.name]
    running = status.state == ChildState.RUNNING
    state = "needs-login" if actor.needs_login and not running else str(status.state)
    if running and not gateway.router.view(status.name).serving:
        state = "starting"  # it answered initialize; the gateway does not have its lists yet
    return UpstreamRow(
        name=status.name,
        transport=str(actor.config.transport),
        state=state,
        pid=actor.pid,
        host=shown_host(actor.config.url) if actor.config.url else None,
        uptime=now - status.started_at if running and status.started_at is not None else None,
        restarts=status.restarts,
        tools=gateway.router.tool_count(status.name),
        in_flight=actor.in_flight,
        mailbox=actor.mailbox_depth(),
        last_error=exit_reason(status.last_exit),
        sandbox=actor.sandbox,
        also_speaks=list(actor.also_speaks),
        next_restart_in=(
            max(0.0, status.next_restart_at - now) if status.next_restart_at is not None else None
        ),
    )


def client_rows(gateway: Gateway) -> list[ClientRow]:
    now = trio.current_time()
    return [
        ClientRow(
            id=session.client.client_id,
            name=str(session.client.client_info.get("name", "?")),
            version=str(session.client.client_info.get("version", "")),
            pid=session.peer_pid,
            attached_for=now - session.attached_at,
            in_flight=sum(a.in_flight_of(session.client.client_id) for a in gateway.upstreams.values()),
            profile=session.client.profile,
            peer=session.peer,
            one_request=session.one_request,
            principal=session.client.principal.name,
            proven_by=session.client.principal.proven_by,
        )
        for session in gateway.sessions()
    ]
