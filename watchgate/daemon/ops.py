"""What the daemon does for each control request. ``ps`` reads the supervisors' observed state
(and the actors' own counters); it never guesses.
"""

from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path
from typing import Any, Protocol

import msgspec
import trio
from trio_websocket import WebSocketConnection

from actors import UnknownChild
from watchgate.config import load_config
from watchgate.daemon import control
from watchgate.daemon.control import (
    ProcessRow,
    PsReport,
    Reply,
    ServerDetail,
    ToolRow,
)
from watchgate.daemon.proctree import process_tree
from watchgate.errors import ConfigError
from watchgate.gateway.messages import RefreshLists
from watchgate.gateway.status import client_rows, upstream_row, upstream_rows
from watchgate.gateway.tree import Gateway
from watchgate.protocol.catalog import LIST_KINDS
from watchgate.protocol.urls import shown_url

_log = logging.getLogger("watchgate.control")


class DaemonPort(Protocol):
    """What the control operations use of the daemon that runs them."""

    config_path: Path | None
    gateway: Gateway

    def request_shutdown(self, grace: float) -> None: ...

    def listeners(self) -> list[str]: ...


class ControlOps:
    def __init__(self, daemon: DaemonPort) -> None:
        self._daemon = daemon

    @property
    def _gateway(self) -> Gateway:
        return self._daemon.gateway

    async def handle(self, ws: WebSocketConnection, message: str | bytes) -> None:
        try:
            request = control.decode_request(message)
        except msgspec.DecodeError as exc:
            await _send(ws, Reply(ok=False, error=f"bad control request: {exc}"))
            return
        try:
            if isinstance(request, control.Logs):
                await self._logs(ws, request)
                return
            result = await self._dispatch(request)
        except UnknownChild as exc:
            await _send(
                ws, Reply(ok=False, error=f"unknown server {exc.name!r} (known: {', '.join(exc.known)})")
            )
            return
        except (ConfigError, ValueError, RuntimeError) as exc:
            await _send(ws, Reply(ok=False, error=str(exc)))
            return
        await _send(ws, Reply(ok=True, result=result))

    async def _dispatch(self, request: control.AnyRequest) -> Any:
        supervisor = self._gateway.upstream_supervisor
        if isinstance(request, control.Ps):
            return self.ps()
        if isinstance(request, control.Tools):
            return self.tools(request.name)
        if isinstance(request, control.Detail):
            return self.detail(request.name)
        if isinstance(request, control.Restart):
            names = supervisor.names() if request.all else self._known(request.names)
            for name in names:
                await supervisor.restart_child(name)
            return self._states(names)
        if isinstance(request, control.Stop):
            for name in self._known(request.names):
                await supervisor.stop_child(name)
            return self._states(request.names)
        if isinstance(request, control.Start):
            for name in self._known(request.names):
                await supervisor.start_child(name)
            return self._states(request.names)
        if isinstance(request, control.Down):
            self._daemon.request_shutdown(request.grace)
            return "stopping"
        if isinstance(request, control.Relist):
            names = [name for name in request.names if name in self._gateway.upstreams]
            for name in names:
                await self._gateway.router.tell(RefreshLists(name, tuple(LIST_KINDS)))
            return names
        if isinstance(request, control.Approvals):
            return await self._gateway.approvals.listing_all()
        if isinstance(request, control.Decide):
            refused = await self._gateway.approvals.decide_anywhere(
                request.id, approve=request.approve, by=request.by, channel="cli", reason=request.reason
            )
            if refused is not None:
                raise ValueError(refused)
            return f"{request.id}: {'approved' if request.approve else 'denied'}"
        if isinstance(request, control.ForgetApprovals):
            return self._gateway.approvals.forget()
        assert isinstance(request, control.Reload)
        return await self._reload()

    def _known(self, names: list[str]) -> list[str]:
        supervisor = self._gateway.upstream_supervisor
        for name in names:
            supervisor.status(name)  # raises UnknownChild listing the known names
        return names

    def _states(self, names: list[str]) -> dict[str, str]:
        supervisor = self._gateway.upstream_supervisor
        return {name: str(supervisor.status(name).state) for name in names}

    def ps(self) -> PsReport:
        gateway = self._gateway
        now = trio.current_time()
        rows = upstream_rows(gateway)
        clients = client_rows(gateway)
        return PsReport(
            pid=os.getpid(),
            config=str(self._daemon.config_path) if self._daemon.config_path else None,
            uptime=now - (gateway.started_at or now),
            multi_server=gateway.config.proxy.multi_server,
            upstreams=rows,
            clients=clients,
            audit=gateway.audit.status() if gateway.audit is not None else None,
            listeners=self._daemon.listeners(),
        )

    def detail(self, name: str) -> ServerDetail:
        """``ps NAME``: the row, what it runs and how it is restarted, its processes, tools,
        recent lifecycle events and last words."""
        self._known([name])
        gateway = self._gateway
        actor = gateway.upstreams[name]
        config = actor.config
        ready = gateway.router.view(name).ready
        served = (
            f"{ready.server_info.get('name', '?')} {ready.server_info.get('version', '')}" if ready else ""
        )
        backoff = config.backoff
        policy = (
            f"{config.restart}, at most {config.max_restarts} restarts within {config.within_seconds:g} s, "
            f"backoff {backoff.initial:g}-{backoff.max:g} s; request timeout {config.request_timeout:g} s"
        )
        events = [line for line in actor.log.tail(1000) if " event: " in line][-10:]
        return ServerDetail(
            row=upstream_row(gateway, gateway.upstream_supervisor.status(name), trio.current_time()),
            target=shown_url(config.url) if config.url else shlex.join(config.command),
            policy=policy,
            protocol=" + ".join((ready.protocol_version, *actor.also_speaks)) if ready is not None else None,
            server=served.strip() or None,
            processes=[ProcessRow(pid=p, depth=d, command=c) for d, p, c in process_tree(actor.pid)],
            tools=[public for public, _, _ in gateway.router.tool_names(name)],
            events=events,
            stderr=list(actor.stderr_tail)[-5:],
        )

    def tools(self, name: str) -> list[ToolRow]:
        self._known([name])
        rows = []
        for public, shown, own in self._gateway.router.tool_names(name):
            shortened = public not in (shown, f"{name}__{shown}")  # hashed down to 64 characters
            rows.append(ToolRow(name=public, upstream_name=own, shortened=shortened))
        return rows

    async def _logs(self, ws: WebSocketConnection, request: control.Logs) -> None:
        actor = self._gateway.upstreams.get(request.name)
        if actor is None:
            known = ", ".join(self._gateway.upstreams)
            await _send(ws, Reply(ok=False, error=f"unknown server {request.name!r} (known: {known})"))
            return
        log = actor.log
        await _send(ws, Reply(ok=True, result=log.tail(request.lines), more=request.follow))
        position = log.total
        while request.follow:
            await log.wait_for_more(position)
            lines = log.since(position)
            position = log.total
            await _send(ws, Reply(ok=True, result=lines, more=True))

    async def _reload(self) -> dict[str, list[str]]:
        path = self._daemon.config_path
        if path is None:
            raise RuntimeError("this daemon was not started from a config file; nothing to reload")
        new = load_config(path)
        changes: dict[str, list[str]] = await self._gateway.reload(new)
        return changes


async def _send(ws: WebSocketConnection, reply: Reply) -> None:
    await ws.send_message(control.encode(reply).decode())
