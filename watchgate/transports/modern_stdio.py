"""A server on stdio spoken to in the 2026-07-28 era (``protocol: modern``, design.md §5).

Over stdio the gateway opens with ``initialize`` unless the config says otherwise: a server of
the official Python SDK fixes a connection's era on its first message, so a blind probe could
break it. With ``protocol: modern`` this connection wraps the process and translates, as the
HTTP connection does for a modern server (``transports/modern.py`` is shared): the actor's
``initialize`` becomes ``server/discover`` (a server that does not answer with 2026-07-28 fails
the start, saying so), every request gets the era's ``_meta``, ``ping`` and ``logging/setLevel``
are mapped, ``input_required`` is passed through to a 2026-07-28 client or answered through an
older client's requests. What the server says outside requests comes on one
``subscriptions/listen`` request; on stdio every subscription shares the channel, so its
notifications are told apart by their ``subscriptionId``, and a new filter cancels the old
request (``notifications/cancelled``, this transport's cancellation) before opening another.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

import msgspec
import trio

from watchgate.protocol.jsonrpc import Line
from watchgate.protocol.subscriptions import SUBSCRIPTION_KEY
from watchgate.transports.facts import ConnectionFacts, Ending
from watchgate.transports.modern import MODERN, Cancel, ModernSession, Send, as_object
from watchgate.transports.stdio import StdioProcess, stdio_connector

if TYPE_CHECKING:
    from watchgate.config.schema import UpstreamConfig

__all__ = ["ModernStdioConnection", "modern_stdio_connector"]

_QUEUED: Final = 64
_log = logging.getLogger("watchgate.upstream")


class ModernStdioConnection:
    """The upstream seam (``transports/base.py``) over a process spoken to in the modern era."""

    ready = False  # every line is translated: no fast path

    def __init__(
        self, process: StdioProcess, server: str, *, required_by: str | None = "protocol: modern"
    ) -> None:
        self._process = process
        self._server = server
        self.required_by = required_by  # what asked for this era, named when the server lacks it
        self._modern: ModernSession | None = None
        self._discovering: Any = None  # the id of the actor's initialize, until it is answered
        self._listening: str | None = None  # the id of the open subscriptions/listen request
        self._wanted: dict[str, Any] = {}
        self._ids = itertools.count(1)
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

    def send_nowait(self, data: Line) -> int:
        return 0

    def receive(self) -> trio.MemoryReceiveChannel[list[bytes]]:
        return self._bursts

    def relay_input(self, request_id: int | str, capabilities: dict[str, Any]) -> None:
        if self._modern is not None:
            self._modern.relay(request_id, capabilities)

    def legacy_client(self, request_id: int | str) -> None:
        """``protocol: modern`` on stdio: one era, chosen by the config (legacy clients are bridged)."""

    # -- toward the server ------------------------------------------------------------------------

    async def send(self, data: Line) -> None:
        for line in bytes(data).split(b"\n"):
            if line.strip():
                await self._send_one(line)

    async def _send_one(self, line: bytes) -> None:
        message = as_object(line)
        if message is None:
            return
        modern = self._modern
        if message.get("method") == "initialize":
            modern = self._modern = ModernSession(message, self._server)
            self._discovering = message.get("id")
            body, _ = modern.discover(message.get("id"))
            await self._write(body)
            return
        if modern is None:  # nothing before initialize is the era's to translate
            await self._write(line)
            return
        outgoing = modern.outgoing(message)
        if isinstance(outgoing, Cancel):
            await self._write(line)  # stdio keeps notifications/cancelled in this era
        elif isinstance(outgoing, Send):
            await self._write(outgoing.body)
        else:
            if outgoing.answer is not None:
                await self._deliver(outgoing.answer)
            await self._update_listen(modern)

    async def _write(self, body: bytes) -> None:
        await self._process.send(body + b"\n")

    async def _update_listen(self, modern: ModernSession) -> None:
        """One subscriptions/listen request with what the gateway wants to hear now."""
        wanted = modern.listen_filter()
        if wanted == self._wanted:
            return
        self._wanted = wanted
        if self._listening is not None:
            cancel = {"requestId": self._listening, "reason": "the gateway listens for something else"}
            await self._write(
                msgspec.json.encode({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": cancel})
            )
            self._listening = None
        if wanted:
            self._listening = f"watchgate-listen-{next(self._ids)}"
            await self._write(modern.listen_request(self._listening, wanted)[0])

    # -- from the server --------------------------------------------------------------------------

    async def pump(self) -> None:
        """Translate what the process says until it ends; then the actor's reading ends too."""
        async with self._out:
            async for burst in self._process.receive():
                for line in burst:
                    await self._on_line(line)

    async def _on_line(self, line: bytes) -> None:
        modern = self._modern
        if modern is None:
            await self._deliver(line)
            return
        message = as_object(line)
        if message is None:
            await self._deliver(line)  # the actor says what is wrong with it
            return
        if (
            self._discovering is not None
            and "method" not in message
            and message.get("id") == self._discovering
        ):
            await self._discovered(modern, message)
            return
        if self._listening is not None and self._of_listen(message):
            notification, ended = modern.from_listen(line)
            if notification is not None:
                await self._deliver(notification)
            if ended:  # the server ended the subscription: ask again
                self._listening, self._wanted = None, {}
                await self._update_listen(modern)
            return
        if _subscription_of(message) is not None:
            return  # a notification of a subscription the gateway has cancelled already
        messages, retry = modern.receive(line)
        if retry is not None:
            await self._write(modern.retry(retry).body)
        for each in messages:
            await self._deliver(each)

    def _of_listen(self, message: dict[str, Any]) -> bool:
        if "method" not in message:
            return bool(_id(message) == self._listening)
        return bool(_subscription_of(message) == self._listening)

    async def _discovered(self, modern: ModernSession, message: dict[str, Any]) -> None:
        self._discovering = None
        result = message.get("result")
        versions = result.get("supportedVersions") if isinstance(result, dict) else None
        if isinstance(result, dict) and isinstance(versions, list) and MODERN in versions:
            modern.capabilities = result.get("capabilities") or {}
            reply = {"jsonrpc": "2.0", "id": message.get("id"), "result": modern.initialize_result(result)}
            _log.info("[%s] speaks MCP %s (stateless, on stdio)", self._server, MODERN)
        else:
            said = message.get("error", {}).get("message") if isinstance(message.get("error"), dict) else None
            why = f" ({self.required_by})" if self.required_by else ""
            reason = f"it does not speak MCP {MODERN}{why}: " + (
                f"server/discover failed: {said}"
                if said
                else f"it supports {versions or 'no listed version'}"
            )
            reply = {"jsonrpc": "2.0", "id": message.get("id"), "error": {"code": -32600, "message": reason}}
        await self._deliver(msgspec.json.encode(reply))

    async def _deliver(self, message: bytes) -> None:
        try:
            await self._out.send([message])
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the actor stopped reading: the connection is over


def _id(message: dict[str, Any]) -> Any:
    return message.get("id")


def _subscription_of(message: dict[str, Any]) -> Any:
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return meta.get(SUBSCRIPTION_KEY) if isinstance(meta, dict) else None


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
