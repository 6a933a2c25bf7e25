"""A server on stdio, spoken to in the era of each client (``protocol: auto``).

Over a pipe a server fixes its era with its first message (the official SDKs do: ``initialize``
after ``server/discover`` is refused, and the other way round), so one process cannot serve both
eras the way one HTTP endpoint can. The gateway's own process of the server speaks the
``initialize`` era, as it always has; when the first 2026-07-28 client's request comes, a second
process of the same command is started and spoken to in 2026-07-28 (``ModernStdioConnection``,
the translation ``protocol: modern`` uses), and that client's requests go there, its
``input_required`` results passing through to it. That is what the client would get directly:
an MCP client on stdio starts a server of its own, in its own era. A server that does not answer
``server/discover`` with 2026-07-28 gets no second try: its 2026-07-28 clients are bridged
through the first process, as before.

Everything else is the first process's: the fast path of the pipe (untouched while no
2026-07-28 request is in flight), the pid ``ps`` shows, the exit that ends the connection. What
the second process says reaches the actor through ``pump_side``; if it exits, its calls in
flight are answered with an error naming it, and the next 2026-07-28 request starts it again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

import msgspec
import trio

from watchgate.errors import JsonRpcError
from watchgate.protocol import jsonrpc
from watchgate.protocol.eras import UNSUPPORTED_VERSION
from watchgate.protocol.jsonrpc import Line
from watchgate.transports.exchange import request_id_of
from watchgate.transports.facts import ConnectionFacts, Ending
from watchgate.transports.modern import MODERN, as_object
from watchgate.transports.modern_stdio import ModernStdioConnection, modern_stdio_connector
from watchgate.transports.stdio import StdioProcess, stdio_connector

if TYPE_CHECKING:
    from watchgate.config.schema import UpstreamConfig
    from watchgate.transports.base import PipeFastPath

__all__ = ["DualStdioConnection", "dual_stdio_connector"]

_OPENER: Final = "watchgate-modern-side"
_log = logging.getLogger("watchgate.upstream")


class DualStdioConnection:
    """The upstream seam (``transports/base.py``) over a process of the ``initialize`` era, with a
    second process of the 2026-07-28 era beside it for the clients of that era."""

    def __init__(self, process: StdioProcess, config: UpstreamConfig, nursery: trio.Nursery) -> None:
        self._process = process
        self._config = config
        self._nursery = nursery
        self._initialize: bytes | None = None  # the actor's, the side's too
        self._first = True  # the first send carries the handshake's initialize
        # requests of 2026-07-28 clients not yet answered, with the capabilities each declared
        self._modern_calls: dict[Any, dict[str, Any]] = {}
        self._side: ModernStdioConnection | None = None
        self._side_scope: trio.CancelScope | None = None
        self._opening = trio.Lock()
        self._waiting: list[bytes] = []  # lines for the second process while it starts
        self._flushing = False
        self._unavailable = False  # it does not speak 2026-07-28: bridged through the first process
        self._side_out, self._side_in = trio.open_memory_channel[list[bytes]](64)
        # a server of 2026-07-28 only refuses the first process's initialize: that process is
        # then spoken to in its era, as protocol: modern would (the refusal fixed no era)
        self._only_modern: ModernStdioConnection | None = None
        self._on_stderr: Callable[[str], None] | None = None

    # -- what the actor reads: the first process's ---------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def stderr_tail(self) -> Sequence[str]:
        return self._process.stderr_tail

    async def pump_stderr(self, on_line: Callable[[str], None] | None = None) -> None:
        self._on_stderr = on_line
        await self._process.pump_stderr(on_line)

    async def wait(self) -> int | None:
        return await self._process.wait()

    def ending(self) -> Ending:
        return self._process.ending()

    def describe(self) -> ConnectionFacts:
        beside = (MODERN,) if self._side is not None else ()
        return ConnectionFacts(sandbox=self._process.sandbox, also_speaks=beside)

    async def drained(self) -> None:
        await self._process.drained()

    def receive(self) -> AsyncIterator[list[bytes]]:
        return _FirstAnswerWatch(self, self._process.receive())

    async def _first_answer(self, burst: list[bytes]) -> tuple[list[bytes], bool]:
        """Look for the answer to the handshake's ``initialize`` in ``burst``: (what to hand on,
        whether it was seen). A refusal naming 2026-07-28 turns this process into one of that era."""
        opener = as_object(self._initialize) if self._initialize is not None else None
        for index, line in enumerate(burst):
            answer = as_object(line)
            if answer is None or opener is None or "method" in answer or answer.get("id") != opener.get("id"):
                continue
            error = answer.get("error")
            if isinstance(error, dict) and _refuses_the_handshake(error):
                await self._speak_modern()
                return burst[:index] + burst[index + 1 :], True
            return burst, True
        return burst, False

    async def _speak_modern(self) -> None:
        _log.info(
            "[%s] refused initialize: it speaks MCP %s only, and is spoken to in it",
            self._config.name,
            MODERN,
        )
        self._unavailable = True  # no second process: this one is of that era
        connection = ModernStdioConnection(self._process, self._config.name, required_by=None)
        self._nursery.start_soon(connection.pump)
        assert self._initialize is not None
        await connection.send([self._initialize])  # server/discover, answered as initialize
        self._only_modern = connection

    async def pump_side(self, on_burst: Callable[[list[bytes]], Awaitable[None]]) -> None:
        async with self._side_in:
            async for burst in self._side_in:
                await on_burst(burst)

    # -- which process a message goes to ----------------------------------------------------------

    def relay_input(self, request_id: int | str, capabilities: dict[str, Any]) -> None:
        if self._only_modern is not None:
            self._only_modern.relay_input(request_id, capabilities)
        elif not self._unavailable and self._initialize is not None:
            self._modern_calls[request_id] = capabilities

    def legacy_client(self, request_id: int | str) -> None:
        """The first process speaks that era already."""

    @property
    def fast_path(self) -> PipeFastPath | None:
        if self._modern_calls or self._first or self._only_modern is not None:
            return None  # every line goes through send, which sorts them
        return self._process.fast_path

    async def send(self, lines: Sequence[Line]) -> None:
        if self._first:
            self._first = False
            self._initialize = next((bytes(line) for line in lines if b'"initialize"' in line), None)
        if self._only_modern is not None:
            await self._only_modern.send(lines)
            return
        if not self._modern_calls:
            await self._process.send(lines)
            return
        first: list[Line] = []
        for line in lines:
            if self._is_modern(line):
                if first:
                    await self._process.send(first)
                    first = []
                await self._to_side(bytes(line))
            else:
                first.append(line)
        if first:
            await self._process.send(first)

    def _is_modern(self, line: Line) -> bool:
        """A 2026-07-28 client's request, or the cancellation of one (decoded only while such
        requests are in flight: the first process's lines pass untouched otherwise)."""
        message = as_object(bytes(line))
        method = message.get("method") if message is not None else None
        if message is None or method is None:  # an answer to the first process's question
            return False
        if method == "notifications/cancelled":
            params = message.get("params")
            return isinstance(params, dict) and params.get("requestId") in self._modern_calls
        return "id" in message and message["id"] in self._modern_calls

    async def _to_side(self, line: bytes) -> None:
        """A 2026-07-28 client's line, to the second process. While that process starts, its
        lines wait here in order (the actor, and the first process's clients, do not wait)."""
        if self._side is not None and not self._waiting:
            await self._send_side(self._side, line)
            return
        self._waiting.append(line)
        if not self._flushing:
            self._flushing = True
            self._nursery.start_soon(self._flush)

    async def _flush(self) -> None:
        try:
            side = await self._opened_side()
            while self._waiting:
                line = self._waiting.pop(0)
                if side is None:  # none to be had: the first process answers, bridged
                    self._modern_calls.pop(request_id_of(line), None)
                    await self._process.send([line])
                else:
                    await self._send_side(side, line)
        finally:
            self._flushing = False

    async def _send_side(self, side: ModernStdioConnection, line: bytes) -> None:
        request_id = request_id_of(line)
        if request_id is not None and request_id in self._modern_calls:
            side.relay_input(request_id, self._modern_calls[request_id])
        await side.send([line])

    # -- the second process ------------------------------------------------------------------------

    async def _opened_side(self) -> ModernStdioConnection | None:
        async with self._opening:
            if self._side is None and not self._unavailable:
                reason = await self._nursery.start(self._run_side)
                if reason is not None:
                    self._unavailable = True
                    self._modern_calls.clear()
                    _log.info(
                        "[%s] opened no 2026-07-28 process beside the first (%s): its 2026-07-28 "
                        "clients are bridged",
                        self._config.name,
                        reason,
                    )
            return self._side

    async def _run_side(self, *, task_status: trio.TaskStatus[str | None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the second process, open it in 2026-07-28, and pump what it says to the actor
        until it ends; ``task_status`` gets None once it is open, else why not."""
        started = opened = False
        try:
            with trio.CancelScope() as scope:
                self._side_scope = scope
                async with modern_stdio_connector(self._config, required_by=None) as side:
                    self._nursery.start_soon(side.pump_stderr, self._on_stderr)
                    bursts = side.receive()
                    reason = await self._open(side, bursts)
                    if reason is not None:
                        task_status.started(reason)
                        started = True
                        return
                    self._side, opened = side, True
                    _log.info(
                        "[%s] started a second process for its clients of MCP %s", self._config.name, MODERN
                    )
                    task_status.started(None)
                    started = True
                    async for burst in bursts:
                        self._answered(burst)
                        await self._side_out.send(burst)
        except Exception as exc:  # it could not be started (the first one could: said, not raised)
            if started:
                raise
            task_status.started(f"cannot start it: {exc}")
            started = True
        finally:
            self._side = None
            if opened:
                await self._answer_orphans()
        if not started:
            task_status.started("it ended before it answered")

    async def _open(self, side: ModernStdioConnection, bursts: AsyncIterator[list[bytes]]) -> str | None:
        """The actor's ``initialize`` (under an id of the side's own), translated to
        ``server/discover``; None if the process speaks 2026-07-28, else why not."""
        assert self._initialize is not None
        opener = msgspec.json.decode(self._initialize)
        opener["id"] = _OPENER
        with trio.move_on_after(self._config.startup_timeout):
            await side.send([msgspec.json.encode(opener) + b"\n"])
            async for burst in bursts:
                for line in burst:
                    answer = as_object(line)
                    if answer is None or answer.get("id") != _OPENER:
                        continue
                    error = answer.get("error")
                    if error is None:
                        await side.send([b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'])
                        return None
                    return str(error.get("message") if isinstance(error, dict) else error)
            return "it exited before it answered"
        return f"no answer within {self._config.startup_timeout:g}s"

    def _answered(self, burst: list[bytes]) -> None:
        for line in burst:
            message = as_object(line)
            if message is not None and "method" not in message:  # an answer (input_required too)
                self._modern_calls.pop(message.get("id"), None)

    async def _answer_orphans(self) -> None:
        """The second process ended: what it had not answered is answered now, saying so."""
        if not self._modern_calls:
            return
        error = JsonRpcError(jsonrpc.INTERNAL_ERROR, f"the {MODERN} process of {self._config.name} exited")
        lines = [jsonrpc.encode(jsonrpc.error_response(call, error)) for call in self._modern_calls]
        self._modern_calls.clear()
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._side_out.send(lines)

    async def close(self) -> None:
        if self._side_scope is not None:
            self._side_scope.cancel()
        await self._side_out.aclose()


class _FirstAnswerWatch:
    """The first process's bursts, watched until the handshake is answered (one flag per burst
    after that); where the process turned out to be of 2026-07-28 only, the translation's."""

    def __init__(self, owner: DualStdioConnection, bursts: AsyncIterator[list[bytes]]) -> None:
        self._owner = owner
        self._bursts = bursts
        self._watching = True

    def __aiter__(self) -> _FirstAnswerWatch:
        return self

    async def __anext__(self) -> list[bytes]:
        translated = self._owner._only_modern
        if translated is not None:
            try:
                return await translated.receive().receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                raise StopAsyncIteration from None
        burst = await self._bursts.__anext__()
        if self._watching:
            burst, seen = await self._owner._first_answer(burst)
            self._watching = not seen
            if not burst:
                return await self.__anext__()
        return burst


def _refuses_the_handshake(error: dict[str, Any]) -> bool:
    """An ``initialize`` refused by a server of 2026-07-28 only (UnsupportedProtocolVersion naming it)."""
    data = error.get("data")
    supported = data.get("supported") if isinstance(data, dict) else None
    return error.get("code") == UNSUPPORTED_VERSION and isinstance(supported, list) and MODERN in supported


def dual_stdio_connector(config: UpstreamConfig) -> AbstractAsyncContextManager[DualStdioConnection]:
    """``transport: stdio`` with ``protocol: auto``: the process, and one of the other era when needed."""
    return _connected(config)


@asynccontextmanager
async def _connected(config: UpstreamConfig) -> AsyncIterator[DualStdioConnection]:
    async with stdio_connector(config) as process, trio.open_nursery() as nursery:
        connection = DualStdioConnection(process, config, nursery)
        try:
            yield connection
        finally:
            await connection.close()
            nursery.cancel_scope.cancel()
