"""The HTTP listener's lifetime: bind early, serve with Watchgate's h11 server, stop gracefully.

``bind`` claims the address (and loads the TLS files) before anything is served, so a port in
use or a refused configuration (a non-loopback address without a token) is one line at start-up,
not a traceback later. ``shutdown`` ends every session (their streams finish with what they
hold) and lets the server close connections within ``GRACE`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import signal
import socket
import ssl

import trio

from watchgate.audit import AuditActor
from watchgate.config.schema import GatewayConfig, HttpListenerConfig
from watchgate.errors import CannotListen
from watchgate.gateway.tree import Gateway
from watchgate.listeners.http.app import McpHttpApp
from watchgate.listeners.http.console import Console
from watchgate.listeners.http.guard import RequestGuard, split_listen
from watchgate.listeners.http.modern import ModernRequests
from watchgate.listeners.http.resource import ResourceServer
from watchgate.listeners.http.server import HttpServer, tls_context
from watchgate.listeners.http.sessions import SessionTable

__all__ = ["GRACE", "HttpListener", "serve_http"]

GRACE = 2.0  # seconds open connections get to finish once the listener stops
_BACKLOG = 1024
_log = logging.getLogger("watchgate.http")


class HttpListener:
    def __init__(self, gateway: Gateway, config: HttpListenerConfig) -> None:
        """`CannotListen` if the configuration is refused (see ``guard.py``)."""
        self.config = config
        _refuse_sandboxes_with_network(gateway.config, config)
        guard = RequestGuard(config)
        self.sessions = SessionTable(
            gateway,
            limit=config.max_sessions,
            idle_timeout=config.session_idle_timeout,
            per_peer=config.max_sessions_per_peer,
        )
        oauth = config.auth.oauth if config.auth is not None else None
        resource = ResourceServer(oauth, oauth.audience or "") if oauth is not None else None
        self.app = McpHttpApp(
            gateway,
            config.path,
            guard,
            self.sessions,
            ModernRequests(gateway, self.sessions),
            resource,
            console=Console(gateway, guard),
        )
        self._server: HttpServer | None = None
        self._socket: socket.socket | None = None
        self._shut = False  # shutdown() came, perhaps before bind(): serve() returns at once
        self.stopped = trio.Event()  # set once serve() has returned
        self.urls: list[str] = []

    def bind(self) -> None:
        """Claim the address now; `CannotListen` names it and why not (or the TLS files). The
        process may hold as many descriptors as the system lets it: each client is one."""
        _more_descriptors()
        tls = None
        if self.config.tls is not None:
            try:
                tls = tls_context(self.config.tls.cert, self.config.tls.key)
            except (OSError, ssl.SSLError) as exc:
                files = f"{self.config.tls.cert} and {self.config.tls.key}"
                raise CannotListen(f"proxy.http.tls: cannot load {files}: {exc}") from None
        host, port = split_listen(self.config.listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:  # create_server closes what it opened when it fails
            sock = socket.create_server((host, port), family=family, backlog=_BACKLOG)
            sock.setblocking(False)
        except OSError as exc:
            raise CannotListen(f"cannot listen on {self.config.listen}: {exc.strerror or exc}") from None
        self._socket = sock
        self._server = HttpServer(self.app, tls=tls, grace=GRACE, body_timeout=self.config.body_timeout)
        if self._shut:
            self._server.shutdown()

    async def serve(self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until ``shutdown`` and its grace are over; started with the URLs it listens on."""
        if self._server is None:
            self.bind()
        assert self._server is not None and self._socket is not None
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.sessions.run)
                async with trio.open_nursery() as server:  # returns once shut down and drained
                    self.urls = await server.start(self._server.serve, [self._socket])
                    if self.urls:
                        self.app.set_resource(f"{self.urls[0]}{self.config.path}")
                    where = ", ".join(f"{url}{self.config.path}" for url in self.urls)
                    _log.info("serving MCP over HTTP at %s", where)
                    task_status.started(self.urls)
                nursery.cancel_scope.cancel()
        finally:
            if self.app.resource is not None:
                with trio.CancelScope(shield=True):  # even when serve() itself was cancelled
                    await self.app.resource.aclose()
            self.stopped.set()

    def stop_accepting(self) -> None:
        """New sessions and requests get 503 from now on; those under way go on (a drain)."""
        self.app.draining = True

    def shutdown(self) -> None:
        """End every session and stop taking connections (idempotent)."""
        self._shut = True
        self.sessions.end_all()
        if self._server is not None:
            self._server.shutdown()


def _more_descriptors() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _refuse_sandboxes_with_network(gateway: GatewayConfig, config: HttpListenerConfig) -> None:
    """A sandboxed server with network reaches a loopback listener like any local process: without
    a token it could use every server behind the gateway that confines it (`CannotListen`)."""
    if config.token_file is not None or (
        config.auth is not None and (config.auth.tokens or config.auth.oauth)
    ):
        return
    exposed = [
        u.name
        for u in gateway.proxy.upstreams
        if u.sandbox is not None and u.sandbox.enabled and u.sandbox.network
    ]
    if exposed:
        raise CannotListen(
            f"refusing to listen on {config.listen} without a bearer token: {', '.join(map(repr, exposed))} "
            "run sandboxed with network and could reach it, and through it every server (set "
            "proxy.http.token_file, or sandbox.network: false)"
        )


async def serve_http(config: GatewayConfig, audit: AuditActor | None) -> None:
    """``watchgate run`` with ``proxy.transport: http`` (or ``--http``): the tree and the
    listener until SIGINT or SIGTERM; then in-flight requests are answered, streams closed."""
    gateway = Gateway(config, audit=audit)
    listener = HttpListener(gateway, config.proxy.http)
    listener.bind()
    async with trio.open_nursery() as nursery:
        await nursery.start(gateway.run)
        async with trio.open_nursery() as http:
            await http.start(listener.serve)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    _log.info("%s: shutting down", signal.Signals(signum).name)
                    break
            await gateway.end_sessions("Watchgate is shutting down")
            listener.shutdown()
        nursery.cancel_scope.cancel()
