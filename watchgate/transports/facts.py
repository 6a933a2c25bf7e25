"""What every upstream connection can say of itself (``UpstreamConnection.describe``): one
small type the transports build and the upstream actor reads, instead of attributes some
transports have and others do not."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConnectionFacts"]


@dataclass(frozen=True, slots=True)
class ConnectionFacts:
    """What ``ps`` and the exit reason say of a connection, read at any time."""

    sandbox: str | None = None  # a process's confinement ("-", "bwrap", …); None: no process
    #: the protocol versions spoken beside the one the handshake named: a legacy session a
    #: connection to a server of both eras opened for its 2025-11-25 clients
    also_speaks: tuple[str, ...] = ()
    needs_login: bool = False  # it ended because a person must run `watchgate auth login`
