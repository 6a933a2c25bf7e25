"""The upstream seam: what an upstream actor needs from a transport, so stdio, Streamable HTTP,
SSE and WebSocket (and the in-memory mock of the tests, ``tests/gateway/fakes.py``) plug into
the same actor.

A transport carries **messages**, not a byte stream (the shape of the MCP SDK's client
``Transport`` and of httpx's transports): ``send`` a batch of whole lines, ``async for burst in
receive()`` the peer's lines a burst at a time (all that arrived together: the unit of the audit
log's group commit), plus the facts about the peer that ``ps`` and error messages show. A
transport over a pipe offers a fast path (``fast_path``: ``ready``/``send_nowait``); one
without it says None and everything goes through ``send``. Foreign errors stop at the
transport: a peer that went away ends ``receive``, and ``send`` to it raises ``PeerGone``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

from watchgate.protocol.jsonrpc import Line
from watchgate.transports.facts import ConnectionFacts, Ending

if TYPE_CHECKING:
    from watchgate.config.schema import UpstreamConfig


class PipeFastPath(Protocol):
    """A pipe's fast path (an optional capability: ``UpstreamConnection.fast_path``): a lone
    line written in the caller's task while nobody else is writing, the rest after it."""

    @property
    def ready(self) -> bool:
        """``send_nowait`` would write at once (nobody is writing to the pipe)."""

    def send_nowait(self, data: Line) -> int:
        """Write what goes at once, returning how much; the rest must follow with ``send``
        before any other line. Raises ``PeerGone``."""

    async def send(self, data: Line) -> None:
        """The rest of a line `send_nowait` began. Raises ``PeerGone``."""


class UpstreamConnection(Protocol):
    @property
    def pid(self) -> int | None: ...

    @property
    def fast_path(self) -> PipeFastPath | None:
        """The pipe's fast path, where there is one and it may be used now; None otherwise."""

    async def send(self, lines: Sequence[Line]) -> None:
        """Send whole lines (each one message and its newline), in order; raises ``PeerGone``
        if the peer is gone."""

    def receive(self) -> AsyncIterator[list[bytes]]:
        """The peer's lines, a burst at a time; ends with the peer. Raises ``LineTooLong``."""

    def relay_input(self, request_id: int | str, capabilities: dict[str, Any]) -> None:
        """The request about to be sent under ``request_id`` comes from a client that answers
        ``input_required`` itself, declaring ``capabilities``: a server of the 2026-07-28 era gets
        them and its ``input_required`` result is passed through untouched (MRTR). A no-op for
        servers of the older era, who ask their questions as requests of their own."""

    def legacy_client(self, request_id: int | str) -> None:
        """The request about to be sent under ``request_id`` comes from a client of the 2025-11-25
        era: a server that speaks both eras gets it over a legacy session (``transports/dual.py``),
        where the server asks that client its questions the way it would directly. A no-op for a
        server that speaks one era."""

    @property
    def stderr_tail(self) -> Sequence[str]: ...

    async def pump_stderr(self, on_line: Callable[[str], None] | None = None) -> None:
        """Drain the peer's diagnostics until it closes them (a no-op where there are none)."""

    async def wait(self) -> int | None:
        """Wait until the peer has ended; its exit code where it has one."""

    def ending(self) -> Ending:
        """How the peer ended: exited(code) | killed(signal) | gone(reason), with its last words."""

    def describe(self) -> ConnectionFacts:
        """What ``ps`` shows of it now."""

    async def pump_side(self, on_burst: Callable[[list[bytes]], Awaitable[None]]) -> None:
        """What a second connection to the same server says (a process of the other era beside a
        stdio server's first: ``transports/dual_stdio.py``), handed to ``on_burst`` until the
        connection ends; returns at once where there is none."""

    async def drained(self) -> None:
        """Until its diagnostics have been read to their end (its last words are in
        ``stderr_tail``); at once where there are none."""


Connector = Callable[["UpstreamConfig"], AbstractAsyncContextManager[UpstreamConnection]]
