"""Accepting connections: plain or TLS, each in a task of the server's nursery, and a graceful end.

``serve`` takes already-bound sockets (the listener binds early, so a port in use is one line at
start-up) and reports the URLs it serves. ``shutdown`` stops accepting, closes connections
waiting for a request at once, and gives those in the middle of one ``grace`` seconds before they
are cancelled: the sessions the listener ends finish their streams within it.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence

import trio

from watchgate.listeners.http.server._connection import BODY_TIMEOUT, HEAD_TIMEOUT, App, Connection

__all__ = ["HttpServer", "tls_context"]


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context for ``cert``/``key`` (OSError or SSLError if they cannot be loaded)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    return context


class HttpServer:
    def __init__(
        self,
        app: App,
        *,
        tls: ssl.SSLContext | None = None,
        grace: float = 2.0,
        body_timeout: float = BODY_TIMEOUT,
    ) -> None:
        self._app = app
        self._body_timeout = body_timeout
        self._tls = tls
        self._grace = grace
        self._stop = trio.Event()
        self._connections: set[Connection] = set()

    def shutdown(self) -> None:
        self._stop.set()

    async def serve(
        self,
        sockets: Sequence[socket.socket],
        *,
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve ``sockets`` until ``shutdown`` and its grace are over; started with their URLs."""
        listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(s)) for s in sockets]
        scheme = "https" if self._tls is not None else "http"
        urls = [_url(scheme, s.getsockname()) for s in sockets]
        async with trio.open_nursery() as connections:
            async with trio.open_nursery() as accepting:
                for listener in listeners:
                    accepting.start_soon(self._accept, listener, connections)
                task_status.started(urls)
                await self._stop.wait()
                accepting.cancel_scope.cancel()
            for listener in listeners:
                await listener.aclose()
            for connection in self._connections:
                if connection.idle:
                    connection.close_now()
            connections.cancel_scope.deadline = trio.current_time() + self._grace

    async def _accept(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError:  # EMFILE and the like: the clients already here go on
                await trio.sleep(0.1)
                continue
            nursery.start_soon(self._connection, stream)

    async def _connection(self, stream: trio.SocketStream) -> None:
        server = _address(stream.socket.getsockname())
        client = _address(stream.socket.getpeername())
        served: trio.abc.Stream = stream
        if self._tls is not None:
            tls = trio.SSLStream(stream, self._tls, server_side=True, https_compatible=True)
            with trio.move_on_after(HEAD_TIMEOUT):
                try:
                    await tls.do_handshake()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                else:
                    served = tls
            if served is stream:  # no TLS agreed in time: nothing else is spoken here
                await trio.aclose_forcefully(stream)
                return
        connection = Connection(
            served,
            self._app,
            scheme="https" if self._tls is not None else "http",
            server=server,
            client=client,
            stopping=self._stop.is_set,
            body_timeout=self._body_timeout,
        )
        self._connections.add(connection)
        try:
            await connection.serve()
        finally:
            self._connections.discard(connection)


def _address(name: object) -> tuple[str, int] | None:
    if isinstance(name, tuple) and len(name) >= 2:
        return str(name[0]), int(name[1])
    return None


def _url(scheme: str, name: tuple[str, int] | tuple[str, int, int, int]) -> str:
    host, port = name[0], name[1]
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
