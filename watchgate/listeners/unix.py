"""The daemon's Unix socket: a 0600 socket in a 0700 directory, peers checked with SO_PEERCRED.

It carries three kinds of connection, told apart by their first bytes: an ``attach`` that hands
its stdin and stdout over (``handoff.py``: the client is served on its own pipes), a WebSocket
on ``/attach`` (the relay: an MCP session over the socket), and a WebSocket on ``/control``
(``watchgate ps/restart/logs/down``: handed to the daemon's ``control`` callback, the listener
does not know the operations). A connection from another uid gets a 403 before anything else.
The accept loop stands apart from the handlers (trio's ``serve_listeners``), each connection is
closed however its handler ends, and any of them failing ends only that connection.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection, wrap_server_stream

from watchgate.errors import CannotListen, DaemonAlreadyRunning
from watchgate.listeners import handoff
from watchgate.listeners.endpoints import ATTACH_PATH, CONTROL_PATH, MAX_MESSAGE
from watchgate.protocol.identity import Principal, of_uid
from watchgate.wire.pipes import eager_receive, eager_send, fd_stream, widen_pipes
from watchgate.wire.wsstream import WebSocketStream

if TYPE_CHECKING:  # the daemon hands its gateway in; a socket probe (`is_listening`) needs none
    from watchgate.gateway.tree import Gateway

__all__ = ["ControlHandler", "UnixListener", "is_listening"]

_log = logging.getLogger("watchgate.daemon")

#: Serves one ``/control`` connection until it closes.
ControlHandler = Callable[[WebSocketConnection], Awaitable[None]]


class UnixListener:
    def __init__(self, listener: trio.SocketListener, gateway: Gateway, control: ControlHandler) -> None:
        self._listener = listener
        self._gateway = gateway
        self._serve_control = control

    @classmethod
    async def bind(
        cls, path: Path, pid_file: Path, gateway: Gateway, control: ControlHandler
    ) -> UnixListener:
        """Claim the socket (replacing a stale one); `DaemonAlreadyRunning` if a daemon answers on it."""
        return cls(await _bind(path, pid_file), gateway, control)

    async def aclose(self) -> None:
        """Stop taking connections (those already taken go on)."""
        await self._listener.aclose()

    async def accept_loop(self, nursery: trio.Nursery) -> None:
        """Take connections until the listener is closed; each one runs in ``nursery``."""
        listener = self._listener
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
            who = of_uid(peer[1]) if peer is not None else of_uid(os.getuid(), proven_by="socket owner")
            nursery.start_soon(self._session, stream, peer[0] if peer else None, who)

    async def _session(self, stream: trio.SocketStream, peer_pid: int | None, who: Principal) -> None:
        try:
            first = await stream.socket.recv(len(handoff.HELLO), socket.MSG_PEEK)
        except OSError as exc:  # reset before it said anything: ends this connection only
            _log.debug("connection dropped: %r", exc)
            await stream.aclose()
            return
        if first in (handoff.HELLO, handoff.HELLO_WITH_PROFILE):
            await self._handed_over(stream, peer_pid, who, with_profile=first == handoff.HELLO_WITH_PROFILE)
            return
        try:
            async with stream, trio.open_nursery() as nursery:  # the connection is closed however it ends
                request = await wrap_server_stream(
                    nursery, stream, max_message_size=MAX_MESSAGE, receive_buffer_size=65536
                )
                path, _, query = request.path.partition("?")
                if path == ATTACH_PATH:
                    profile = parse_qs(query).get("profile", [None])[-1]
                    if profile is not None and not self._gateway.has_profile(profile):
                        await request.reject(404, body=self._gateway.unknown_profile(profile).encode())
                    else:
                        ws = await request.accept()
                        channel = WebSocketStream(ws)
                        await self._gateway.attach_client(
                            channel, channel, peer_pid=peer_pid, profile=profile, principal=who
                        )
                        await ws.aclose()
                elif path == CONTROL_PATH:
                    ws = await request.accept()
                    await self._serve_control(ws)
                else:
                    await request.reject(404, body=b"unknown path: use /attach or /control")
                nursery.cancel_scope.cancel()
        except* _CONNECTION_ENDED as group:
            # raised inside the connection's nursery, so they come grouped; any of them ends only
            # this connection (a `logs -f` stopped with Ctrl-C, a client that vanished)
            _log.debug("session ended: %r", group.exceptions)

    async def _handed_over(
        self, stream: trio.SocketStream, peer_pid: int | None, who: Principal, *, with_profile: bool
    ) -> None:
        """Serve a client on the stdin and stdout its ``attach`` handed over (handoff.py)."""
        async with stream:
            size = len(handoff.HELLO) + (handoff.MAX_PROFILE + 1 if with_profile else 0)
            try:
                data, ancillary, _, _ = await stream.socket.recvmsg(size, socket.CMSG_SPACE(handoff.FDS * 8))
            except OSError as exc:
                _log.debug("handoff failed: %r", exc)
                return
            fds = handoff.unpack_fds(ancillary)
            profile = refusal = None
            if with_profile:
                try:
                    with trio.fail_after(5):
                        profile = await _profile_named(stream, data[len(handoff.HELLO) :])
                except (ValueError, trio.TooSlowError, *_STREAM_GONE) as exc:
                    refusal = f"a malformed hand-over: {exc or 'no profile name'}"
                else:
                    if not self._gateway.has_profile(profile):
                        refusal = self._gateway.unknown_profile(profile)
            if len(fds) != handoff.FDS or refusal is not None:
                for fd in fds:
                    os.close(fd)
                if refusal is not None:
                    with contextlib.suppress(*_STREAM_GONE):
                        await stream.send_all(handoff.REFUSED + refusal.encode() + b"\n")
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
                ended_by_client = await self._gateway.attach_client(
                    eager_receive(receive),
                    eager_send(send),
                    peer_pid=peer_pid,
                    profile=profile,
                    principal=who,
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


_STREAM_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


async def _profile_named(stream: trio.SocketStream, head: bytes) -> str:
    """The profile's name that follows ``HELLO_WITH_PROFILE`` (ValueError: too long, cut short,
    not UTF-8)."""
    while b"\n" not in head:
        if len(head) > handoff.MAX_PROFILE:
            raise ValueError("the profile's name is too long")
        more = await stream.receive_some(handoff.MAX_PROFILE + 1)
        if not more:
            raise ValueError("the profile's name was cut short")
        head += more
    return head.partition(b"\n")[0].decode()


_CONNECTION_ENDED = (ConnectionClosed, HandshakeError, trio.BrokenResourceError, trio.ClosedResourceError)


_SUN_PATH_MAX = 107  # sockaddr_un.sun_path holds 108 bytes with the terminating NUL


def _socket_exists(path: Path) -> bool:
    """Whether a socket is at ``path``; `CannotListen` if something else (or a symlink) is."""
    if path.is_symlink() or (path.exists() and not stat.S_ISSOCK(path.lstat().st_mode)):
        raise CannotListen(f"{path} exists and is not a socket; remove it if nothing else needs it")
    return path.exists()


def _pid_in(pid_file: Path) -> str:
    return pid_file.read_text().strip() if pid_file.exists() else "?"


async def _bind(path: Path, pid_file: Path) -> trio.SocketListener:
    if len(os.fsencode(path)) > _SUN_PATH_MAX:
        raise CannotListen(
            f"the socket path {path} is {len(os.fsencode(path))} bytes, more than a Unix socket allows "
            f"({_SUN_PATH_MAX}); set WATCHGATE_RUNTIME_DIR to a shorter directory"
        )
    if _socket_exists(path):
        if await is_listening(path):
            raise DaemonAlreadyRunning(
                f"a Watchgate daemon is already running (pid {_pid_in(pid_file)}, socket {path})"
            )
        _log.warning("removing a stale socket left by a daemon that died: %s", path)
        path.unlink()  # noqa: ASYNC240 - one unlink at start-up, before anything is served
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
