"""A client's conversation over HTTP, as the client actor's channel (``gateway.ports.ClientChannel``).

The client actor reads the client's lines and writes lines for it, as on stdio. Here the lines
in are the POST bodies, and each line out goes to the stream it belongs to:

- a response: the stream of the POST that carried the request (by the client's request id);
- ``notifications/progress``: the stream of the request that chose its ``progressToken``;
- anything else (sampling and elicitation requests, log messages, list_changed): the newest
  open POST stream, since such a message comes while a call is in flight, else the standalone
  stream (number 0) that a GET reads, where it waits (bounded) for the next GET.

A legacy session (Mcp-Session-Id) lives across many POSTs; a 2026-07-28 request is a session
of its own that ends with its answer (``modern.py``). Ending a session ends the client actor,
whose requests still in flight are cancelled upstream.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
import trio

from watchgate.errors import PeerGone
from watchgate.listeners.http.streams import EventLog
from watchgate.protocol import jsonrpc
from watchgate.protocol.identity import ANONYMOUS

__all__ = ["DuplicateRequestId", "HttpSession"]

_KEPT_STREAMS = 32  # finished streams kept for resumption, per session


class DuplicateRequestId(Exception):
    """The client reused the id of a request of its own that is still in flight."""


class _Meta(msgspec.Struct):
    progressToken: int | str | None = None


class _Params(msgspec.Struct):
    _meta: _Meta | None = msgspec.field(default=None, name="_meta")
    progressToken: int | str | None = None


_params = msgspec.json.Decoder(_Params)


def progress_token(
    params: msgspec.Raw | msgspec.UnsetType, *, notification: bool = False
) -> int | str | None:
    """The token a request chose (``_meta.progressToken``), or a progress notification names."""
    if params is msgspec.UNSET:
        return None
    try:
        decoded = _params.decode(params)
    except msgspec.DecodeError:  # not an object: the router answers for the request itself
        return None
    if notification:
        return decoded.progressToken
    return decoded._meta.progressToken if decoded._meta is not None else None


class HttpSession:
    takes_views = False  # lines are routed one by one: they must be whole bytes
    delivers = True  # in memory: the actor hands its messages over in its own task (deliver)

    def __init__(self, session_id: str | None, *, history: int = 1024) -> None:
        self.id = session_id
        self.protocol_version: str | None = None
        self._history = history
        #: lines for the client actor's read loop, made when first needed: most lines are read
        #: in their POST's own task, and a 2026-07-28 request's channel never queues one unless
        #: its call parks (a channel costs more than the rest of this object)
        self._inbox: trio.MemorySendChannel[list[bytes]] | None = None
        self._lines: trio.MemoryReceiveChannel[list[bytes]] | None = None
        self._numbers = 0
        self.standalone = EventLog(0, limit=history)
        self._streams: OrderedDict[int, EventLog] = OrderedDict()
        self._by_request: dict[int | str, EventLog] = {}
        self._by_token: dict[int | str, EventLog] = {}
        self._open: dict[int, EventLog] = {}  # POST streams a client is reading now, by number
        self.last_used = trio.current_time()
        self.requests = 0  # requests posted (its initialize is the first)
        self.principal = ANONYMOUS  # who opened it: only that caller may use it
        self.ended = False
        #: the client actor's reader, for a line taken in the posting task (no hop to its task)
        self._reader: Callable[[bytes], Awaitable[bool]] | None = None
        self._pending = 0  # bursts posted to the inbox and not yet taken by the actor

    # --- the client actor's side ----------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return False  # no pipe fast path: every line goes through send()

    def send_nowait(self, data: bytes | bytearray) -> int:
        return 0

    async def send(self, data: bytes | bytearray | memoryview) -> None:
        if self.ended:
            raise PeerGone("the HTTP session has ended")
        for line in bytes(data).split(b"\n"):
            if line:
                self._route(line)

    def receive(self) -> AsyncIterator[list[bytes]]:
        return self._taken()

    async def _taken(self) -> AsyncIterator[list[bytes]]:
        async for burst in self._queue()[1]:
            self._pending -= 1
            yield burst

    def reads_with(self, reader: Callable[[bytes], Awaitable[bool]]) -> None:
        self._reader = reader

    def deliver(self, msg: jsonrpc.Message, line: bytes) -> bool:
        """The actor's message, decoded already, to where it belongs (False once ended: the
        writer's ``send`` then says the session is gone)."""
        if self.ended:
            return False
        self._route_message(msg, line.rstrip(b"\n"))
        return True

    def _route(self, line: bytes) -> None:
        self._route_message(jsonrpc.decode(line), line)  # written by the gateway: well-formed

    def _route_message(self, msg: jsonrpc.Message, line: bytes) -> None:
        if msg.method is msgspec.UNSET:
            log = self._by_request.pop(msg.id, None) if isinstance(msg.id, int | str) else None
            if log is not None:
                log.append(line)
                log.finish()
                self._forget_tokens(log)
                return
        elif msg.method == "notifications/progress":
            token = progress_token(msg.params, notification=True)
            target = self._by_token.get(token) if token is not None else None
            if target is not None:
                target.append(line)
                return
        self._unrelated(line)

    def _unrelated(self, line: bytes) -> None:
        for log in reversed(self._open.values()):
            if not log.complete:
                log.append(line)
                return
        self.standalone.append(line)

    def _forget_tokens(self, log: EventLog) -> None:
        for token in [t for t, target in self._by_token.items() if target is log]:
            del self._by_token[token]

    # --- the HTTP side -------------------------------------------------------------------------
    async def post_request(self, msg: jsonrpc.Message, line: bytes) -> EventLog:
        """Hand a request to the client actor; its answer and related messages go to the log returned."""
        assert isinstance(msg.id, int | str)
        if msg.id in self._by_request:
            raise DuplicateRequestId(msg.id)
        self._numbers += 1
        log = EventLog(self._numbers, limit=self._history)
        self._streams[log.number] = log
        while len(self._streams) > _KEPT_STREAMS:
            self._streams.popitem(last=False)
        self._by_request[msg.id] = log
        self.requests += 1
        token = progress_token(msg.params)
        if token is not None:
            self._by_token[token] = log
        await self.post(line)
        return log

    async def post(self, line: bytes) -> None:
        """Hand a line to the client actor: read in this task when nothing is queued before it
        and the actor is not reading (one task hop less per request), else queued (waits while
        it is 64 bursts behind)."""
        self.last_used = trio.current_time()
        if not self._pending and not self.ended and self._reader is not None and await self._reader(line):
            return
        self._pending += 1
        try:
            await self._queue()[0].send([line])
        except BaseException as exc:
            self._pending -= 1
            if isinstance(exc, trio.ClosedResourceError | trio.BrokenResourceError):
                raise PeerGone("the HTTP session has ended") from None
            raise

    def _queue(self) -> tuple[trio.MemorySendChannel[list[bytes]], trio.MemoryReceiveChannel[list[bytes]]]:
        if self._inbox is None or self._lines is None:
            self._inbox, self._lines = trio.open_memory_channel[list[bytes]](64)
            if self.ended:  # made after the end: as closed as it would have been
                self._inbox.close()
        return self._inbox, self._lines

    @property
    def busy(self) -> bool:
        """A request is in flight or a stream is being read: not idle, whatever the clock says."""
        return bool(self._by_request or self._open or self.standalone.reading)

    def stream(self, number: int) -> EventLog | None:
        return self.standalone if number == 0 else self._streams.get(number)

    def reading(self, log: EventLog, active: bool) -> None:
        """A response serves ``log`` now (or stopped): unrelated messages may go there."""
        log.reading = active
        if log.number == 0:
            return
        if active:
            self._open[log.number] = log
        else:
            self._open.pop(log.number, None)
        self.last_used = trio.current_time()

    def end(self) -> None:
        """The client is done (DELETE, idle, shutdown): its actor sees the end of its input."""
        if self.ended:
            return
        self.ended = True
        if self._inbox is not None:
            self._inbox.close()
        for log in [self.standalone, *self._streams.values()]:
            log.finish()
