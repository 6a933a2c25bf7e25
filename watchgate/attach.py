"""``watchgate attach``: what an MCP client launches. It bridges the client's stdin/stdout to one
session on the daemon, starting the daemon first when none is running (unless told not to).

Bytes pass through untouched in both directions; when the client closes stdin the session ends
and the daemon cancels that client's in-flight requests upstream.
"""

from __future__ import annotations

import os
import sys

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from watchgate.control import ATTACH_PATH
from watchgate.control_client import connect
from watchgate.paths import RuntimePaths
from watchgate.pipes import widen_pipes


async def bridge(paths: RuntimePaths) -> bool:
    """Relay until one side ends; True if the client ended the session (its stdin closed),
    False if the daemon did (``watchgate down``, or the daemon died)."""
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    stdout = trio.lowlevel.FdStream(os.dup(sys.stdout.fileno()))
    widen_pipes(stdin, stdout)  # when the client gave us pipes: large messages in fewer writes
    async with connect(paths, ATTACH_PATH, receive_buffer_size=65536) as ws, trio.open_nursery() as nursery:
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
