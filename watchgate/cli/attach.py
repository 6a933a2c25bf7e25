"""``watchgate attach``: what an MCP client launches. It joins one session on the daemon,
starting the daemon first when none is running (unless told not to).

First it hands its stdin and stdout to the daemon (handoff.py, SCM_RIGHTS): the daemon then reads
and writes the client's pipes itself and ``attach`` only waits for the session to end. Where
that cannot be done (no fd passing, an older daemon, ``WATCHGATE_ATTACH_RELAY=1``) it relays the
bytes over a WebSocket instead. Either way, when the client closes stdin the session ends and
the daemon cancels that client's in-flight requests upstream.
"""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlencode

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from watchgate.daemon.client import connect
from watchgate.daemon.paths import RuntimePaths
from watchgate.errors import WatchgateError
from watchgate.listeners import handoff
from watchgate.listeners.endpoints import ATTACH_PATH
from watchgate.wire.pipes import stdio_streams

RELAY_ENV = "WATCHGATE_ATTACH_RELAY"


class AttachRefused(WatchgateError):
    """The daemon would not take this client (a profile it does not have); the message says why."""


def hand_over(paths: RuntimePaths, profile: str | None = None) -> bool | None:
    """Give the daemon this process's stdin and stdout and wait for the session to end: True if
    the client ended it, False if the daemon did; None if the daemon would not take them (then
    nothing has changed and the caller relays instead). Raises `AttachRefused` saying why when
    the daemon has no such ``profile``."""
    if os.environ.get(RELAY_ENV) == "1" or not hasattr(socket, "SCM_RIGHTS"):
        return None
    paths.verify_socket()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(paths.socket))
            hello = (
                handoff.HELLO if profile is None else handoff.HELLO_WITH_PROFILE + profile.encode() + b"\n"
            )
            sock.sendmsg([hello], handoff.pack_fds([sys.stdin.fileno(), sys.stdout.fileno()]))
            sock.settimeout(10)
            answer = sock.recv(1)
            if answer == handoff.REFUSED:
                raise AttachRefused(sock.makefile("rb").readline(512).decode(errors="replace").strip())
            if answer != handoff.ACCEPTED:
                return None
        except OSError:  # no daemon, or one that does not know the handoff: the relay says why
            return None
        # the daemon has the client's pipes now: nothing here may read or write them again
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, sys.stdin.fileno())
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        sock.settimeout(None)
        try:
            status = sock.recv(1)
        except OSError:
            status = b""
        return status == handoff.CLIENT_LEFT  # b"": the daemon died


async def bridge(paths: RuntimePaths, profile: str | None = None) -> bool:
    """Relay until one side ends; True if the client ended the session (its stdin closed),
    False if the daemon did (``watchgate down``, or the daemon died)."""
    stdin, stdout = stdio_streams()
    resource = ATTACH_PATH if profile is None else f"{ATTACH_PATH}?{urlencode({'profile': profile})}"
    async with connect(paths, resource, receive_buffer_size=65536) as ws, trio.open_nursery() as nursery:
        client_left = trio.Event()
        nursery.start_soon(_client_to_daemon, stdin, ws, client_left)
        await _daemon_to_client(ws, stdout)
        nursery.cancel_scope.cancel()
    return client_left.is_set()


async def _client_to_daemon(
    stdin: trio.abc.ReceiveStream, ws: WebSocketConnection, client_left: trio.Event
) -> None:
    while chunk := await stdin.receive_some(65536):
        try:
            await ws.send_message(bytes(chunk))
        except ConnectionClosed:
            return
    client_left.set()
    await ws.aclose()  # the client is gone: end the session, the daemon cancels its requests


async def _daemon_to_client(ws: WebSocketConnection, stdout: trio.abc.SendStream) -> None:
    while True:
        try:
            message = await ws.get_message()
        except ConnectionClosed:
            return
        try:
            await stdout.send_all(message.encode() if isinstance(message, str) else message)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
