"""The long-lived daemon: the supervision tree, its listener (the Unix socket clients attach
to, ``listeners/unix.py``), the pid file, and a graceful shutdown with a deadline.

``watchgate ps/restart/logs/down/reload`` arrive on the socket's ``/control`` path and are
served here (``ops.py``); MCP sessions are the listener's and the gateway's business.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from watchgate.config import GatewayConfig
from watchgate.daemon.ops import ControlOps
from watchgate.daemon.paths import RuntimePaths, open_private
from watchgate.errors import CannotListen
from watchgate.gateway.messages import Broadcast
from watchgate.gateway.tree import Gateway, audit_actor
from watchgate.listeners.http import HttpListener
from watchgate.listeners.unix import UnixListener
from watchgate.protocol import jsonrpc
from watchgate.transports.base import Connector
from watchgate.transports.connectors import default_connector

_log = logging.getLogger("watchgate.daemon")


class Daemon:
    def __init__(
        self,
        config: GatewayConfig,
        paths: RuntimePaths,
        *,
        config_path: Path | None = None,
        connector: Connector = default_connector,
        audit: bool = True,
    ) -> None:
        self.config = config
        self.paths = paths
        self.config_path = config_path
        self.gateway = Gateway(config, connector=connector, audit=audit_actor(config) if audit else None)
        self.ops = ControlOps(self)
        self._stop = trio.Event()
        self._grace = 5.0
        self._listener: UnixListener | None = None
        self.http: HttpListener | None = None  # proxy.transport: http (or `up --http`)

    def release(self) -> None:
        """Give up what the constructor claimed (the audit log) when the daemon never serves."""
        if self.gateway.audit is not None:
            self.gateway.audit.release()

    async def bind(self) -> None:
        """Claim the socket (replacing a stale one); DaemonAlreadyRunning if a daemon answers on it."""
        self.paths.ensure()
        if self.config.proxy.transport == "http" and self.http is None:
            self.http = HttpListener(self.gateway, self.config.proxy.http)  # CannotListen: refused
        self._listener = await UnixListener.bind(
            self.paths.socket, self.paths.pid_file, self.gateway, self._control
        )
        if self.http is not None:
            try:
                self.http.bind()  # after the socket: "already running" is the likelier refusal
            except CannotListen:
                await self._listener.aclose()
                self.paths.socket.unlink(missing_ok=True)
                raise

    def listeners(self) -> list[str]:
        """Where clients reach this daemon: its socket, and its MCP URLs over HTTP."""
        http = self.http
        urls = [f"{url}{http.config.path}" for url in http.urls] if http is not None else []
        return [f"unix:{self.paths.socket}", *urls]

    def request_shutdown(self, grace: float) -> None:
        self._grace = grace
        self._stop.set()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind the socket, run the tree, accept sessions; on shutdown leave nothing behind."""
        if self._listener is None:
            await self.bind()
        listener = self._listener
        assert listener is not None
        try:
            with open_private(self.paths.pid_file, append=False) as pid_file:
                pid_file.write(f"{os.getpid()}\n".encode())
            async with trio.open_nursery() as nursery:
                await nursery.start(self.gateway.run)
                nursery.start_soon(listener.accept_loop, nursery)
                if self.http is not None:
                    await nursery.start(self.http.serve)
                where = ", ".join(self.listeners()[1:]) or "no HTTP"
                _log.info(
                    "ready: %d upstream(s), socket %s, %s",
                    len(self.gateway.upstreams),
                    self.paths.socket,
                    where,
                )
                task_status.started()
                await self._stop.wait()
                await self._drain(listener)
                if self.http is not None:
                    self.http.shutdown()
                    await self.http.stopped.wait()
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await listener.aclose()
                for path in (self.paths.socket, self.paths.pid_file):
                    path.unlink(missing_ok=True)
            _log.info("stopped")

    async def _drain(self, listener: UnixListener) -> None:
        """Tell clients, stop taking new sessions, let in-flight requests finish within the grace."""
        _log.info("shutting down: %d client(s), grace %g s", self.gateway.notifier.client_count, self._grace)
        notice = jsonrpc.notification(
            "notifications/message",
            {"level": "warning", "logger": "watchgate", "data": "the Watchgate daemon is shutting down"},
        )
        await self.gateway.notifier.tell(Broadcast(notice))
        await listener.aclose()
        if self.http is not None:
            self.http.stop_accepting()
        with trio.move_on_after(self._grace):
            # in-flight counts change inside many actors: poll them, cheaply
            while any(actor.in_flight for actor in self.gateway.upstreams.values()):  # noqa: ASYNC110
                await trio.sleep(0.05)
        await self.gateway.end_sessions("the Watchgate daemon is shutting down")

    async def _control(self, ws: WebSocketConnection) -> None:
        while True:
            try:
                message = await ws.get_message()
            except ConnectionClosed:
                return
            await self.ops.handle(ws, message)
