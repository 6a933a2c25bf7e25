"""The seams between the gateway's actors: exactly what each one uses of the others.

The design card's sentence, "each upstream a supervised actor with its own mailbox, a router
actor owning the namespace table, a notification actor multiplexing events to the client
actor", names four actors that talk to each other. Each talks to the others through these
``typing.Protocol``s, never through the concrete classes, so the messages, the in-flight table,
the forwarding and the notifications are typed against what a peer *does* (hypercorn's
``typing.py`` is the model). Only ``tree.py``, which builds the supervision tree, names the
actor classes; the import-linter contracts in ``pyproject.toml`` keep it that way.

A mailbox takes ``Any`` here: what each actor accepts is spelled out in ``messages.py``, which
imports this module, so this one cannot import it back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

from actors import Reply
from watchgate.config.schema import UpstreamConfig
from watchgate.errors import JsonRpcError
from watchgate.protocol.identity import Principal
from watchgate.protocol.jsonrpc import Message

__all__ = ["ClientChannel", "ClientPort", "NotifierPort", "RouterPort", "UpstreamPort"]

R = TypeVar("R")


class ClientChannel(Protocol):
    """How a client actor meets its client: lines in, lines out (the client seam).

    A listener builds one per session: ``wire.lines.LineChannel`` over a pipe or a WebSocket
    stream; an HTTP listener's, which answers each request on the POST that carried it, is the
    next. ``receive()`` yields the client's lines a burst at a time and ends when the client
    does; ``send`` raises ``PeerGone`` once nothing reaches the client any more. ``ready`` and
    ``send_nowait`` are the pipe's fast path; ``takes_views`` says a large answer may be written
    as views of the server's bytes. ``deliver`` is an in-memory channel's (HTTP's, ``delivers``
    True): it takes a message the actor already decoded, with its line, where it belongs at
    once (no writer task, no decoding it again); a byte stream's says False."""

    takes_views: bool
    delivers: bool

    def deliver(self, msg: Message, line: bytes) -> bool: ...

    @property
    def ready(self) -> bool: ...

    def send_nowait(self, data: bytes | bytearray) -> int: ...

    async def send(self, data: bytes | bytearray | memoryview) -> None: ...

    def receive(self) -> AsyncIterator[list[bytes]]: ...

    def reads_with(self, reader: Callable[[bytes], Awaitable[bool]]) -> None:
        """The actor's reader for a line taken in the sender's task (an HTTP request's): it
        says False when the line must queue (the actor is busy with earlier ones). A byte
        stream's lines always come through ``receive`` (a no-op)."""


class CallSlot(Protocol):
    """A call's place under its caller's concurrency limit (``access:``), freed once it ends."""

    def release(self) -> None: ...


class ClientPort(Protocol):
    """An attached client, as the router, the notifier and the upstreams see it.

    What the client said of itself is the client's to keep: the router tells it (``introduce``,
    ``set_log_level``, ``mark_initialized``) while it handles ``initialize``,
    ``logging/setLevel`` and ``notifications/initialized``; the others only read it."""

    @property
    def client_id(self) -> int: ...

    @property
    def capabilities(self) -> dict[str, Any]: ...

    @property
    def client_info(self) -> dict[str, Any]: ...

    @property
    def initialized(self) -> bool:
        """It sent ``notifications/initialized``: from now on it may receive notifications."""

    @property
    def log_level(self) -> str | None: ...

    @property
    def profile(self) -> str | None:
        """The profile it chose when it attached (None: it sees everything)."""

    @property
    def principal(self) -> Principal:
        """Who it is, as its listener proved it (a token's name, a uid's user)."""

    @property
    def finished(self) -> bool:
        """The session has ended: sends are dropped."""

    def introduce(self, capabilities: dict[str, Any], client_info: dict[str, Any]) -> None:
        """What its ``initialize`` said: the capabilities it declared and who it is."""

    def sends_now(self, msg: Message) -> bool:
        """``send(msg)`` would finish without waiting now, so without a checkpoint where a
        cancellation could cut it short (a group commit then needs no shield for it)."""

    def set_log_level(self, level: str) -> None: ...

    def mark_initialized(self) -> None: ...

    async def send(self, msg: Message) -> None:
        """Queue one message for the client; never blocks on a slow client."""

    async def tell(self, msg: Any) -> None:
        """Queue an already encoded line (a broadcast)."""

    def expect_answer(self, request_id: str, upstream: AnswerPort) -> None:
        """The client's answer to ``request_id`` (a server's request) goes to ``upstream``."""

    def relays_input(self, request_id: int | str) -> dict[str, Any] | None:
        """The capabilities a 2026-07-28 request of this client declared: it takes an
        ``input_required`` result itself (MRTR), so a 2026-07-28 upstream's is passed through
        untouched. None for any other request."""


class UpstreamPort(Protocol):
    """One upstream server's actor, as the router and the clients see it."""

    name: str
    config: UpstreamConfig

    async def tell(self, msg: Any) -> None: ...

    async def forward(self, request: Any) -> None:
        """A client's request, written to the server without a task hop when it can be."""

    async def reject_queued(self, error: JsonRpcError | None = None) -> None:
        """Answer every request still in the mailbox with ``error`` (the server is down)."""

    async def ask(self, make: Callable[[Reply[R]], Any], *, timeout: float) -> R:
        """A request on the gateway's own account (lists, setLevel), answered through ``Reply``."""
        ...


class AnswerPort(Protocol):
    """Who waits for a client's answer to a question it was asked (a server's actor, or the
    gateway's approvals)."""

    async def tell(self, msg: Any) -> None: ...


class RouterPort(Protocol):
    """The router, as the clients and the upstreams see it."""

    async def tell(self, msg: Any) -> None: ...

    def tell_nowait(self, msg: Any) -> None:
        """Queue ``msg`` now or raise ``actors.MailboxFull``."""
        ...


class RequestRoutes(Protocol):
    """Where a client's requests go (``router/requests.py``): a forwarded call is routed in the
    client's reader, anything else through the router's mailbox."""

    async def route_now(self, client: ClientPort, msg: Message) -> bool:
        """Route a forwarded call in the caller's task; False: it needs the router's own."""
        ...


class NotifierPort(Protocol):
    """The notification actor, as the router and the upstreams see it."""

    async def tell(self, msg: Any) -> None: ...
