"""``attach`` hands its stdin and stdout to the daemon (SCM_RIGHTS), so the daemon serves the
client on its own pipes, the fast path `watchgate run` has, instead of a WebSocket relay with
two extra hops (issue: the daemon path as fast as `run`).

On the daemon's Unix socket, a connection that starts with ``HELLO`` carries two descriptors
(the client's stdin and stdout) in the same message; the peer's uid was checked at accept. The
daemon answers ``ACCEPTED``, serves the session on those descriptors, and when it ends writes
one byte: ``CLIENT_LEFT`` (the client closed its stdin) or ``DAEMON_ENDED`` (``down``, or the
session was let go), then closes the connection. ``attach`` exits with the status that byte
says. A daemon that does not know ``HELLO`` closes the connection and ``attach`` relays over
the WebSocket instead. ``attach --profile NAME`` says ``HELLO_WITH_PROFILE`` and the name; a
daemon that has no such profile answers ``REFUSED`` and the reason instead of ``ACCEPTED``.
"""

from __future__ import annotations

import array
import socket
from typing import Final

HELLO: Final = b"WGFD1\n"
HELLO_WITH_PROFILE: Final = b"WGFD2\n"  # followed, in the same message, by the profile's name and "\n"
ACCEPTED: Final = b"+"
REFUSED: Final = b"!"  # followed by why, one line (an unknown profile)
MAX_PROFILE: Final = 64
CLIENT_LEFT: Final = b"0"
DAEMON_ENDED: Final = b"1"
FDS: Final = 2  # stdin, stdout


def pack_fds(fds: list[int]) -> list[tuple[int, int, bytes]]:
    return [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]


def unpack_fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors received, every one of them (so none leaks even if too many came)."""
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    return list(fds)
