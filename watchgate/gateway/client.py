"""One actor per attached client: frames its byte stream and owns its output queue.

The mailbox holds encoded lines bound for the client, so senders (upstream readers, the router,
the notification actor) pay the encode in their own task and the writer just joins and writes in
large chunks.

Sending to a client never waits (design.md §12): the upstream readers, the router and the
notification actor serve every client, so one that stops reading must not stall them. Lines that
do not fit the mailbox wait in an overflow of the same size; a client whose queue stays full for
``stall_timeout`` seconds, or overflows it, is disconnected (its calls are cancelled upstream).
A send to a session that has ended is dropped.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections import deque
from typing import Any, Final

import trio
from msgspec import UNSET

from actors import Actor, MailboxFull
from watchgate.errors import JsonRpcError, LineTooLong, PeerGone
from watchgate.gateway.era import ModernEra
from watchgate.gateway.messages import ClientGone, ClientNotification, ClientRequest, ForwardAnswer
from watchgate.gateway.ports import AnswerPort, ClientChannel, RequestRoutes, RouterPort
from watchgate.protocol import jsonrpc
from watchgate.protocol.identity import ANONYMOUS, Principal
from watchgate.protocol.jsonrpc import Kind, LargeAnswer, Line, Message, RequestId, error_response

_BATCH: Final = 256
_END: Final = b""  # queued behind the last line when the session ends (a real line is never empty)
_ids = itertools.count(1)
_PING: Final = re.compile(rb'"method"\s*:\s*"ping"')
_log = logging.getLogger("watchgate.client")


class ClientActor(Actor[Line | LargeAnswer]):
    def __init__(
        self,
        channel: ClientChannel,
        *,
        router: RouterPort,
        routes: RequestRoutes,
        linger: float = 0.0,
        mailbox_size: int = 1024,
        stall_timeout: float = 10.0,
        profile: str | None = None,
        one_request: bool = False,
        principal: Principal = ANONYMOUS,
        listens_only: bool = False,
    ) -> None:
        """``linger``: at end of input, how long to wait for the answers still owed (``watchgate
        run``, where a closed stdin may just mean "no more requests"); 0 cancels them at once.
        ``stall_timeout``: how long the output queue may stay full before the client is let go.
        ``one_request``: a client that lives for one request (its end is no news in the log).
        ``listens_only``: a client that is one ``subscriptions/listen`` (over HTTP): broadcasts
        reach it through its subscription alone, even before that is open."""
        self.client_id = next(_ids)
        self.profile = profile  # the profile it attached with: what of the gateway it sees
        self.principal = principal  # who it is, as its listener proved it
        super().__init__(f"client-{self.client_id}", mailbox_size=mailbox_size)
        self._channel = channel
        self._router = router
        self._routes = routes
        self._answers: dict[str, AnswerPort] = {}
        self.capabilities: dict[str, Any] = {}
        self.client_info: dict[str, Any] = {}
        self.initialized = False
        self.log_level: str | None = None  # the router tells it on logging/setLevel
        self._linger = linger
        self._one_request = one_request
        # the id of an initialize not answered yet: nothing after it but a ping is read until it
        # is (a client that sends its first calls at once gets the initialize answer first)
        self._initializing: tuple[RequestId, trio.Event] | None = None
        self._owed = 0  # requests read whose answer has not been sent yet
        self._all_answered = trio.Event()
        self._all_answered.set()
        self._written = trio.Event()
        self._overflow: deque[Line | LargeAnswer] = deque()
        self._overflow_limit = mailbox_size
        self._stall_timeout = stall_timeout
        self._stalled_since: float | None = None
        self._stalled = trio.Event()
        self._session: trio.CancelScope | None = None
        self.finished = False  # the session has ended: sends are dropped, queued requests skipped
        self.client_left = False  # the session ended because the client closed its input
        self._reading = trio.CancelScope()
        self._lines_held = trio.Lock()  # by whoever reads lines now: the read loop, or a sender
        # the 2026-07-28 era toward this client, whatever its transport (gateway/era/)
        self._era = ModernEra(self, router, one_request=one_request, listens_only=listens_only)
        #: a client of one request whose channel takes messages in memory (an HTTP request):
        #: everything it sends is delivered in the sender's task, so it runs no writer of its own
        self._direct = one_request and not listens_only and channel.delivers

    def queue_line(self, line: Line) -> None:
        """Queue ``line`` for the client as it is (its era's subscriptions: their acks and ends)."""
        self._queue(line)

    def sends_now(self, msg: Message) -> bool:
        """`send` waits only for the era's work on a subscription's own answer or a server's
        question; everything else it does without a checkpoint."""
        return not self._era.busy or not self._era.waits_on(msg)

    async def send(self, msg: Message) -> None:
        """Queue ``msg`` for the client, or write it right away in the caller's task when it is
        the last answer owed and the writer is idle (see outbox.py): one task hop less for the
        answer to a lone call. With more answers owed they are queued, to go out in batches."""
        last = False
        if self._era.busy:
            changed = await self._era.outgoing(msg)
            if changed is None:
                return
            msg = changed
        if msg.method is UNSET:  # a response: one fewer answer owed to this client
            if self._initializing is not None and msg.id == self._initializing[0]:
                self._initializing[1].set()  # the reader goes on after this answer is queued
                self._initializing = None
            self._owed -= 1
            if self._owed == 0:
                self._all_answered.set()
                last = True
            if self._era.requests:
                msg = self._era.shaped(msg)
        if self.finished:
            return
        if self._channel.takes_views and (large := jsonrpc.large_answer(msg)) is not None:
            self._queue(large)
            return
        line = jsonrpc.encode_line(msg)
        if self._direct:  # no writer at all: delivered now, or dropped once the channel has ended
            self._channel.deliver(msg, bytes(line))
            return
        if self.idle and self._channel.deliver(msg, bytes(line)):  # no writer hop
            return
        if last and self.idle and self._channel.ready:  # the idle-writer bypass (Actor.idle)
            try:
                sent = self._channel.send_nowait(line)
            except PeerGone:
                sent = 0  # the writer meets the same error with this line and ends the session
            if sent == len(line):
                return
            line = line[sent:]
        self._queue(line)

    def _queue(self, item: Line | LargeAnswer) -> None:
        """Into the mailbox, or behind it into the overflow (never waiting, order kept); for a
        direct client (no writer) to its channel at once."""
        if self._direct:
            if isinstance(item, bytes | bytearray) and item:  # not the end marker
                line = bytes(item)
                self._channel.deliver(jsonrpc.decode(line), line)  # False once ended: nobody to tell
            return
        if not self._overflow:
            try:
                self.tell_nowait(item)
            except MailboxFull:
                self._stalled_since = trio.current_time()
                self._stalled.set()
            else:
                return
        if len(self._overflow) >= self._overflow_limit:
            self._let_go(f"{len(self._overflow) + self._overflow_limit} messages unread")
            return
        self._overflow.append(item)

    def _refill(self) -> None:
        """The writer took a batch: move what overflowed into the freed mailbox, in order."""
        while self._overflow:
            try:
                self.tell_nowait(self._overflow[0])
            except MailboxFull:
                return
            self._overflow.popleft()
        self._stalled_since = None

    async def _watch_stalls(self) -> None:
        while True:
            await self._stalled.wait()
            self._stalled = trio.Event()
            while (since := self._stalled_since) is not None:
                await trio.sleep_until(since + self._stall_timeout)
                if self._stalled_since == since:
                    self._let_go(f"its output stayed full for {self._stall_timeout:g} s")
                    return

    def _let_go(self, why: str) -> None:
        """Disconnect a client that does not read: its pending output is dropped."""
        if self.finished:
            return
        _log.warning("[%s] does not read what it is sent (%s); disconnecting it", self.name, why)
        self.finished = True
        self._overflow.clear()
        if self._session is not None:
            self._session.cancel()

    def _owe(self) -> None:
        if self._owed == 0:
            self._all_answered = trio.Event()
        self._owed += 1

    def settle(self) -> None:
        """A request read is answered otherwise (a 2026-07-28 subscription: when it ends)."""
        self._owed -= 1
        if self._owed == 0:
            self._all_answered.set()

    def asker(self, question_id: str) -> AnswerPort | None:
        return self._answers.pop(question_id, None)

    def end(self) -> None:
        """End the session as if the client had left, but write what is queued for it first
        (an open subscription gets its graceful closure: the answer to its listen request)."""
        self._era.close()
        self._reading.cancel()

    async def tell(self, msg: Line | LargeAnswer) -> None:
        """A broadcast (the notification actor): as it is, or, for a client that listens
        (``subscriptions/listen``), a tagged copy for each subscription that asked for it."""
        tagged = self._era.broadcast(bytes(msg)) if isinstance(msg, bytes | bytearray) else None
        if tagged is None:
            await super().tell(msg)
            return
        for line in tagged:
            await super().tell(line + b"\n")

    def introduce(self, capabilities: dict[str, Any], client_info: dict[str, Any]) -> None:
        self.capabilities, self.client_info = capabilities, client_info

    def set_log_level(self, level: str) -> None:
        self.log_level = level

    def mark_initialized(self) -> None:
        self.initialized = True

    def expect_answer(self, request_id: str, upstream: AnswerPort) -> None:
        """Route the client's response to ``request_id`` back to the upstream that asked."""
        self._answers[request_id] = upstream

    def relays_input(self, request_id: int | str) -> dict[str, Any] | None:
        return self._era.declared(request_id)

    async def take(self, line: bytes) -> None:
        """A direct client's request, read in the caller's task (the HTTP request's): such a
        client needs no task of its own while its answer is awaited — what it is sent is
        delivered in the sender's task. It ends with `leave`, or, if its call parks on
        ``input_required``, lives on in `run` (which then reads the retry)."""
        assert self._direct, "only a client of one request delivered in memory is served inline"
        await self._on_line(line)

    async def leave(self) -> None:
        """A client served by `take` is done: answered, or its client left (what it still has
        in flight is cancelled upstream)."""
        self.finished = True
        gone = self._gone_mail()
        try:  # room in the mailbox (the rule): no wait, so nothing a cancellation could cut short
            self._router.tell_nowait(gone)
        except MailboxFull:  # a wait that must not be cut short: a shield (costly: only here)
            with trio.CancelScope(shield=True):
                await self._router.tell(gone)

    async def _gone(self) -> None:
        await self._router.tell(self._gone_mail())

    def _gone_mail(self) -> ClientGone:
        # a direct client that owes nothing and was asked nothing has nothing in flight
        # anywhere, and the notifier never knew it: one mail, not N+2
        settled = self._direct and not self._owed and not self._answers
        return ClientGone(self.client_id, settled=settled)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until the client closes its side; then its session ends and its requests are cancelled."""
        with self.incarnation():
            await self._serve(task_status)

    async def _serve(self, task_status: trio.TaskStatus[None]) -> None:
        self._channel.reads_with(self._read_now)
        async with trio.open_nursery() as nursery:
            self._session = nursery.cancel_scope
            if self._direct:
                self._written.set()  # nothing is ever queued to write
            else:
                nursery.start_soon(self._write_loop, nursery.cancel_scope)
                nursery.start_soon(self._watch_stalls)
            self._era.start(nursery)
            task_status.started()
            try:
                with self._reading:
                    await self._read_loop()
                    if self._linger:  # end of input in `watchgate run`: answer what was asked first
                        with trio.move_on_after(self._linger):
                            await self._all_answered.wait()
            finally:
                with trio.CancelScope(shield=True):
                    await self._gone()
                    if not self.finished and not self._direct:
                        await self._finish_writing()
                self.finished = True
                self._overflow.clear()
                nursery.cancel_scope.cancel()

    async def _read_now(self, line: bytes) -> bool:
        """A line read in its sender's task (an HTTP request's), if nothing reads lines now and
        nothing waits for an initialize answer; False: it must queue. The sender has checked
        that nothing is queued before it, so the order of the client's lines holds."""
        held = self._lines_held
        if held.locked() or self._initializing is not None or self.finished:
            return False
        held.acquire_nowait()
        try:
            await self._on_line(line)
        finally:
            held.release()
        return True

    async def _read_loop(self) -> None:
        held = self._lines_held
        try:
            async for burst in self._channel.receive():
                if held.locked():  # a sender reads a line of its own: it came first
                    await held.acquire()
                else:
                    held.acquire_nowait()
                try:
                    for line in burst:
                        if self._initializing is not None and _PING.search(line) is None:
                            await self._initializing[1].wait()  # a ping may come first (the spec)
                        await self._on_line(line)
                finally:
                    held.release()
        except LineTooLong as exc:
            _log.warning("[%s] %s; closing the session", self.name, exc)
        self.client_left = True  # not cancelled: its input ended (`down` and let-go cancel instead)
        _log.log(logging.DEBUG if self._one_request else logging.INFO, "[%s] disconnected", self.name)

    async def _on_line(self, line: bytes) -> None:
        try:
            msg = jsonrpc.decode(line, check_utf8=True)  # what a client sends goes on to servers
        except jsonrpc.InvalidRequest as exc:
            self._owe()
            await self.send(error_response(exc.request_id, exc))
            return
        except JsonRpcError as exc:
            self._owe()
            await self.send(error_response(None, exc))
            return
        kind = msg.kind
        if kind is Kind.REQUEST:
            self._owe()
            if self._era.marks(msg):
                modern = await self._era.request(msg)
                if modern is None:
                    return
                msg = modern
            if msg.method == "initialize" and isinstance(msg.id, int | str) and self._initializing is None:
                self._initializing = (msg.id, trio.Event())
            if not await self._routes.route_now(self, msg):
                await self._router.tell(ClientRequest(self, msg))
        elif kind is Kind.NOTIFICATION:
            if msg.method == "notifications/cancelled":
                cancelled = await self._era.cancelled(msg)
                if cancelled is None:
                    return
                msg = cancelled
            await self._router.tell(ClientNotification(self, msg))
        else:
            upstream = self._answers.pop(msg.id, None) if isinstance(msg.id, str) else None
            if upstream is None:
                _log.debug("[%s] answer to unknown request %r", self.name, msg.id)
                return
            await upstream.tell(ForwardAnswer(msg))

    async def _write_loop(self, session: trio.CancelScope) -> None:
        try:
            while True:
                # idle (Actor.idle) only while waiting here: not while a batch is written, and
                # for good after the end marker
                batch = await self.receive_batch(_BATCH)
                self._refill()
                await self._write_batch(batch)
                if _END in batch:
                    return
        except PeerGone:
            # nothing more can reach this client: end the session (its requests are cancelled
            # upstream), or its mailbox would fill up and stall everyone who sends to it
            _log.info("[%s] output closed; ending the session", self.name)
            session.cancel()
        finally:
            self._written.set()

    async def _write_batch(self, batch: list[Line | LargeAnswer]) -> None:
        """Lines joined into one write; a large answer's buffers written as they are, in order."""
        lines: list[Line] = []
        for item in batch:
            if isinstance(item, LargeAnswer):
                if lines:
                    await self._channel.send(jsonrpc.join_lines(lines))
                    lines = []
                for part in item:
                    await self._channel.send(part)
            elif item:  # the end marker is empty
                lines.append(item)
        if lines:
            await self._channel.send(jsonrpc.join_lines(lines))

    async def _finish_writing(self) -> None:
        """Let the writer write everything queued before the session ends, within a second: the
        answers to requests that completed before the client left must not be lost."""
        self._queue(_END)  # behind whatever overflowed
        with trio.move_on_after(1):
            await self._written.wait()
