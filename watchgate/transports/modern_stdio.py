"""A server on stdio spoken to in the 2026-07-28 era (``protocol: modern``, design.md §5).

Over stdio the gateway opens with ``initialize`` unless the config says otherwise: a server of
the official Python SDK fixes a connection's era on its first message, so a blind probe could
break it. With ``protocol: modern`` this connection is the stdio wire of a ``ModernConnection``
(``transports/modern/``, which the HTTP connection plugs into too): a line per message, and
``notifications/cancelled`` as this transport's cancellation. So the actor's
``initialize`` becomes ``server/discover`` (a server that does not answer with 2026-07-28 fails
the start, saying so), every request gets the era's ``_meta``, ``ping`` and ``logging/setLevel``
are mapped, ``input_required`` is passed through to a 2026-07-28 client or answered through an
older client's requests. What the server says outside requests comes on one
``subscriptions/listen`` request; on stdio every subscription shares the channel, so its
notifications are told apart by their ``subscriptionId``, and a new filter cancels the old
request (``notifications/cancelled``, this transport's cancellation) before opening another.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

import msgspec
import trio

from watchgate.protocol.jsonrpc import Line
from watchgate.transports.facts import ConnectionFacts, Ending
from watchgate.transports.modern import MODERN, ModernConnection, Send, as_object, subscription_of
from watchgate.transports.stdio import StdioProcess, stdio_connector

if TYPE_CHECKING:
    from watchgate.config.schema import UpstreamConfig

__all__ = ["ModernStdioConnection", "modern_stdio_connector"]

_QUEUED: Final = 64
_log = logging.getLogger("watchgate.upstream")


class ModernStdioConnection:
    """The upstream seam (``transports/base.py``) over a process spoken to in the modern era."""

    fast_path = None  # every line is translated: no fast path

    def __init__(
        self, process: StdioProcess, server: str, *, required_by: str | None = "protocol: modern"
    ) -> None:
        self._process = process
        self._server = server
        self.required_by = required_by  # what asked for this era, named when the server lacks it
        self._modern: ModernConnection | None = None  # the era, from the actor's initialize on
        self._discovering = False  # the probe is not answered yet
        self._listening: str | None = None  # the id of the listen request written last
        self._out, self._bursts = trio.open_memory_channel[list[bytes]](_QUEUED)

    # -- what the actor reads of the process ----------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def describe(self) -> ConnectionFacts:
        return self._process.describe()

    async def pump_side(self, on_burst: object) -> None:
        """One process, one era (``protocol: modern``)."""

    async def drained(self) -> None:
        await self._process.drained()

    @property
    def stderr_tail(self) -> Sequence[str]:
        return self._process.stderr_tail

    async def pump_stderr(self, on_line: Callable[[str], None] | None = None) -> None:
        await self._process.pump_stderr(on_line)

    async def wait(self) -> int | None:
        return await self._process.wait()

    def ending(self) -> Ending:
        return self._process.ending()

    def receive(self) -> trio.MemoryReceiveChannel[list[bytes]]:
        return self._bursts

    def relay_input(self, request_id: int | str, capabilities: dict[str, Any]) -> None:
        if self._modern is not None:
            self._modern.relay(request_id, capabilities)

    def legacy_client(self, request_id: int | str) -> None:
        """``protocol: modern`` on stdio: one era, chosen by the config (legacy clients are bridged)."""

    # -- toward the server ------------------------------------------------------------------------

    async def send(self, lines: Sequence[Line]) -> None:
        for line in lines:
            await self._send_one(bytes(line))

    async def _send_one(self, line: bytes) -> None:
        message = as_object(line)
        if message is None:
            return
        if message.get("method") == "initialize":
            modern = self._modern = ModernConnection(self, message, self._server)
            self._discovering = True
            await self._write(modern.discover_request().body)
        elif self._modern is None:  # nothing before initialize is the era's to translate
            await self._write(line)
        else:
            await self._modern.send(message, line)

    async def _write(self, body: bytes) -> None:
        await self._process.send([body.rstrip(b"\n") + b"\n"])

    # -- the wire of the ModernConnection: a line each ----------------------------------------------

    async def post(self, send: Send) -> None:
        await self._write(send.body)

    async def cancel(self, request_id: object, line: bytes) -> None:
        await self._write(line)  # stdio keeps notifications/cancelled in this era

    async def listen(self, request: Send | None) -> None:
        """Every subscription shares the channel: a new one cancels the one open before."""
        if self._listening is not None:
            cancel = {"requestId": self._listening, "reason": "the gateway listens for something else"}
            await self._write(
                msgspec.json.encode({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": cancel})
            )
        self._listening = None if request is None else request.request_id
        if request is not None:
            await self._write(request.body)

    async def deliver(self, message: bytes) -> None:
        await self._deliver(message)

    # -- from the server --------------------------------------------------------------------------

    async def pump(self) -> None:
        """Translate what the process says until it ends; then the actor's reading ends too."""
        async with self._out:
            async for burst in self._process.receive():
                for line in burst:
                    await self._on_line(line)

    async def _on_line(self, line: bytes) -> None:
        modern = self._modern
        message = as_object(line) if modern is not None else None
        if modern is None or message is None:
            await self._deliver(line)  # the actor says what is wrong with it, if anything
            return
        if self._discovering and "method" not in message and message.get("id") == modern.initialize_id:
            await self._discovered(modern, line)
            return
        if modern.listening is not None and modern.of_listen(message):
            if not await modern.heard(line):  # the server ended the subscription: ask again
                self._listening = None
                await modern.update_listen(again=True)
            return
        if subscription_of(message) is not None:
            return  # a notification of a subscription the gateway has cancelled already
        await modern.received(line)

    async def _discovered(self, modern: ModernConnection, answer: bytes) -> None:
        self._discovering = False
        why = modern.discovered(answer)
        if why is None:
            reply = modern.initialize_answer()
            _log.info("[%s] speaks MCP %s (stateless, on stdio)", self._server, MODERN)
        else:
            by = f" ({self.required_by})" if self.required_by else ""
            reason = f"it does not speak MCP {MODERN}{by}: {why}"
            error = {"code": -32600, "message": reason}
            reply = msgspec.json.encode({"jsonrpc": "2.0", "id": modern.initialize_id, "error": error})
        await self._deliver(reply)

    async def _deliver(self, message: bytes) -> None:
        try:
            await self._out.send([message])
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the actor stopped reading: the connection is over


def modern_stdio_connector(
    config: UpstreamConfig, *, required_by: str | None = "protocol: modern"
) -> AbstractAsyncContextManager[ModernStdioConnection]:
    """``transport: stdio`` with ``protocol: modern``: the process, spoken to in its era.
    ``required_by``: what asked for the era, named when the server does not speak it."""
    return _connected(config, required_by)


@asynccontextmanager
async def _connected(config: UpstreamConfig, required_by: str | None) -> AsyncIterator[ModernStdioConnection]:
    async with stdio_connector(config) as process, trio.open_nursery() as nursery:
        connection = ModernStdioConnection(process, config.name, required_by=required_by)
        nursery.start_soon(connection.pump)
        try:
            yield connection
        finally:
            nursery.cancel_scope.cancel()
