"""What an upstream actor needs from a transport, so stdio, HTTP and WebSocket (and in-memory
fakes in tests) plug into the same actor: a pair of byte streams carrying newline-delimited
JSON-RPC, plus the few facts about the peer that ``ps`` and error messages show.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

import trio

from watchgate.config.schema import Transport
from watchgate.errors import UpstreamStartError
from watchgate.transports.stdio import stdio_connector

if TYPE_CHECKING:
    from watchgate.config.schema import UpstreamConfig


class UpstreamConnection(Protocol):
    @property
    def pid(self) -> int | None: ...

    @property
    def stdin(self) -> trio.abc.SendStream: ...

    @property
    def stdout(self) -> trio.abc.ReceiveStream: ...

    @property
    def stderr_tail(self) -> Sequence[str]: ...

    async def pump_stderr(self, on_line: Callable[[str], None] | None = None) -> None:
        """Drain the peer's diagnostics until it closes them (a no-op where there are none)."""

    async def wait(self) -> int | None:
        """Wait until the peer has ended; its exit code where it has one."""

    def describe_exit(self) -> str:
        """Why the peer ended, for a human: exit code or signal, and its last words."""


Connector = Callable[["UpstreamConfig"], AbstractAsyncContextManager[UpstreamConnection]]


def default_connector(config: UpstreamConfig) -> AbstractAsyncContextManager[UpstreamConnection]:
    """Pick the transport's connector; a transport without one fails that upstream, clearly."""
    if config.transport == Transport.STDIO:
        return stdio_connector(config)
    raise UpstreamStartError(
        f"transport {config.transport!s} is not supported by this version of Watchgate (only stdio is)"
    )
