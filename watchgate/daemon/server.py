"""The long-lived daemon: the supervision tree plus a control socket that clients attach to.

One Unix socket (0600, in a 0700 directory) carries WebSocket connections: ``/attach`` sessions
are MCP clients (each a temporary ClientActor child), ``/control`` connections are ``watchgate
ps/restart/logs/down/reload``. A connection from another uid is refused before the handshake.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import struct
from pathlib import Path

import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection, wrap_server_stream

from watchgate.config import GatewayConfig
from watchgate.daemon.control import ATTACH_PATH, CONTROL_PATH, MAX_MESSAGE
from watchgate.daemon.ops import ControlOps
from watchgate.daemon.paths import RuntimePaths, open_private
from watchgate.errors import CannotListen, DaemonAlreadyRunning
from watchgate.gateway.messages import Broadcast
from watchgate.gateway.tree import Gateway, audit_actor
from watchgate.listeners import handoff
from watchgate.protocol import jsonrpc
from watchgate.transports.base import Connector, default_connector
from watchgate.wire.pipes import eager_receive, eager_send, fd_stream, widen_pipes
from watchgate.wire.wsstream import WebSocketStream

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
        self._listener: trio.SocketListener | None = None

    def release(self) -> None:
        """Give up what the constructor claimed (the audit log) when the daemon never serves."""
        if self.gateway.audit is not None:
            self.gateway.audit.release()

    async def bind(self) -> None:
        """Claim the socket (replacing a stale one); DaemonAlreadyRunning if a daemon answers on it."""
        self.paths.ensure()
        self._listener = await _bind(self.paths)

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
                nursery.start_soon(self._accept_loop, listener, nursery)
                _log.info("ready: %d upstream(s), socket %s", len(self.gateway.upstreams), self.paths.socket)
                task_status.started()
                await self._stop.wait()
                await self._drain(listener)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await listener.aclose()
                for path in (self.paths.socket, self.paths.pid_file):
                    path.unlink(missing_ok=True)
            _log.info("stopped")

    async def _drain(self, listener: trio.SocketListener) -> None:
        """Tell clients, stop taking new sessions, let in-flight requests finish within the grace."""
        _log.info("shutting down: %d client(s), grace %g s", self.gateway.notifier.client_count, self._grace)
        notice = jsonrpc.notification(
            "notifications/message",
            {"level": "warning", "logger": "watchgate", "data": "the Watchgate daemon is shutting down"},
        )
        await self.gateway.notifier.tell(Broadcast(notice))
        await listener.aclose()
        with trio.move_on_after(self._grace):
            # in-flight counts change inside many actors: poll them, cheaply
            while any(actor.in_flight for actor in self.gateway.upstreams.values()):  # noqa: ASYNC110
                await trio.sleep(0.05)
        await self.gateway.end_sessions("the Watchgate daemon is shutting down")

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            try:
                stream = await listener.accept()
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                return
            peer = _peer_credentials(stream)
            if peer is not None and peer[1] != os.getuid():
                _log.warning("refused a connection from uid %d (pid %d)", peer[1], peer[0])
                nursery.start_soon(self._refuse, stream)
                continue
            nursery.start_soon(self._session, stream, peer[0] if peer else None)

    async def _session(self, stream: trio.SocketStream, peer_pid: int | None) -> None:
        try:
            first = await stream.socket.recv(len(handoff.HELLO), socket.MSG_PEEK)
        except OSError as exc:  # reset before it said anything: ends this connection only
            _log.debug("connection dropped: %r", exc)
            await stream.aclose()
            return
        if first == handoff.HELLO:
            await self._handed_over(stream, peer_pid)
            return
        try:
            async with stream, trio.open_nursery() as nursery:  # the connection is closed however it ends
                request = await wrap_server_stream(
                    nursery, stream, max_message_size=MAX_MESSAGE, receive_buffer_size=65536
                )
                if request.path == ATTACH_PATH:
                    ws = await request.accept()
                    channel = WebSocketStream(ws)
                    await self.gateway.attach_client(channel, channel, peer_pid=peer_pid)
                    await ws.aclose()
                elif request.path == CONTROL_PATH:
                    ws = await request.accept()
                    await self._control(ws)
                else:
                    await request.reject(404, body=b"unknown path: use /attach or /control")
                nursery.cancel_scope.cancel()
        except* _CONNECTION_ENDED as group:
            # raised inside the connection's nursery, so they come grouped; any of them ends only
            # this connection (a `logs -f` stopped with Ctrl-C, a client that vanished)
            _log.debug("session ended: %r", group.exceptions)

    async def _handed_over(self, stream: trio.SocketStream, peer_pid: int | None) -> None:
        """Serve a client on the stdin and stdout its ``attach`` handed over (handoff.py)."""
        async with stream:
            try:
                _, ancillary, _, _ = await stream.socket.recvmsg(
                    len(handoff.HELLO), socket.CMSG_SPACE(handoff.FDS * 8)
                )
            except OSError as exc:
                _log.debug("handoff failed: %r", exc)
                return
            fds = handoff.unpack_fds(ancillary)
            if len(fds) != handoff.FDS:
                for fd in fds:
                    os.close(fd)
                return
            receive, send = (fd_stream(fd) for fd in fds)
            widen_pipes(receive, send)
            try:
                try:
                    await stream.send_all(handoff.ACCEPTED)
                except _STREAM_GONE:
                    return  # attach vanished before the session began: nothing to serve
                # from here the client talks to the daemon on its own pipes: an attach that dies
                # does not end the session, the client's end of its stdin does
                ended_by_client = await self.gateway.attach_client(
                    eager_receive(receive), eager_send(send), peer_pid=peer_pid
                )
                status = handoff.CLIENT_LEFT if ended_by_client else handoff.DAEMON_ENDED
                with trio.CancelScope(shield=True), contextlib.suppress(*_STREAM_GONE):
                    await stream.send_all(status)
            finally:
                with trio.CancelScope(shield=True):
                    await receive.aclose()
                    await send.aclose()

    async def _refuse(self, stream: trio.SocketStream) -> None:
        """Tell a peer of another uid why it is turned away (403), so it fails instead of waiting."""
        with trio.move_on_after(5):
            try:
                async with stream, trio.open_nursery() as nursery:
                    request = await wrap_server_stream(nursery, stream, max_message_size=MAX_MESSAGE)
                    await request.reject(403, body=b"this Watchgate daemon belongs to another user")
                    nursery.cancel_scope.cancel()
            except* _CONNECTION_ENDED as group:
                _log.debug("refused peer went away: %r", group.exceptions)

    async def _control(self, ws: WebSocketConnection) -> None:
        while True:
            try:
                message = await ws.get_message()
            except ConnectionClosed:
                return
            await self.ops.handle(ws, message)


_STREAM_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)
_CONNECTION_ENDED = (ConnectionClosed, HandshakeError, trio.BrokenResourceError, trio.ClosedResourceError)


_SUN_PATH_MAX = 107  # sockaddr_un.sun_path holds 108 bytes with the terminating NUL


async def _bind(paths: RuntimePaths) -> trio.SocketListener:
    path = paths.socket
    if len(os.fsencode(path)) > _SUN_PATH_MAX:
        raise CannotListen(
            f"the socket path {path} is {len(os.fsencode(path))} bytes, more than a Unix socket allows "
            f"({_SUN_PATH_MAX}); set WATCHGATE_RUNTIME_DIR to a shorter directory"
        )
    if path.is_symlink() or (path.exists() and not stat.S_ISSOCK(path.lstat().st_mode)):
        raise CannotListen(f"{path} exists and is not a socket; remove it if nothing else needs it")
    if path.exists():
        if await is_listening(path):
            pid = paths.pid_file.read_text().strip() if paths.pid_file.exists() else "?"
            raise DaemonAlreadyRunning(f"a Watchgate daemon is already running (pid {pid}, socket {path})")
        _log.warning("removing a stale socket left by a daemon that died: %s", path)
        path.unlink()
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # the socket is born 0600: no window where others could connect
    try:
        await sock.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(128)
    return trio.SocketListener(sock)


async def is_listening(path: Path) -> bool:
    try:
        stream = await trio.open_unix_socket(str(path))
    except OSError:
        return False
    await stream.aclose()
    return True


def _peer_credentials(stream: trio.SocketStream) -> tuple[int, int] | None:
    """(pid, uid) of the connecting process, where the OS tells (Linux SO_PEERCRED)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:  # pragma: no cover - not Linux: the 0600 socket is the only guard
        return None
    with contextlib.suppress(OSError):
        raw = stream.socket.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
        pid, uid, _gid = struct.unpack("3i", raw)
        return pid, uid
    return None  # pragma: no cover
