"""What every upstream connection can say of itself (``UpstreamConnection.describe``): one
small type the transports build and the upstream actor reads, instead of attributes some
transports have and others do not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ConnectionFacts", "Ending"]


@dataclass(frozen=True, slots=True)
class Ending:
    """How a connection ended, typed: ``exited`` (with its ``code``), ``killed`` (by a signal),
    ``gone`` (a remote peer that went away, a stream closed); ``text`` says it for a person (the
    code or signal and the last words), which ``str()`` gives."""

    kind: Literal["exited", "killed", "gone"]
    text: str
    code: int | None = None

    @property
    def clean(self) -> bool:
        """It exited by itself with code 0: nothing to report as a failure."""
        return self.kind == "exited" and self.code == 0

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class ConnectionFacts:
    """What ``ps`` and the exit reason say of a connection, read at any time."""

    sandbox: str | None = None  # a process's confinement ("-", "bwrap", …); None: no process
    #: the protocol versions spoken beside the one the handshake named: a legacy session a
    #: connection to a server of both eras opened for its 2025-11-25 clients
    also_speaks: tuple[str, ...] = ()
    needs_login: bool = False  # it ended because a person must run `watchgate auth login`
