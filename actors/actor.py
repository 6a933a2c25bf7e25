"""A single actor: one trio task that owns a bounded mailbox.

Why an actor and not a lock-protected object?  An actor serialises every state
change through one task, so its handler code never has to reason about
interleavings, and its bounded mailbox turns overload into backpressure
(``tell`` waits) or an explicit error (``tell_nowait`` raises) instead of
unbounded memory growth.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar, cast

import trio

from .errors import AskTimeout, MailboxFull

__all__ = ["Actor", "Reply"]

M = TypeVar("M")
R = TypeVar("R")


class Reply(Generic[R]):
    """A one-shot slot the handler of an ``ask`` message fills in.

    It is a separate object (rather than a return value of ``handle``) so a
    handler may answer later, from another task, or hand the reply on to a
    different actor entirely.
    """

    __slots__ = ("_done", "_error", "_event", "_value")

    def __init__(self) -> None:
        self._done = False
        # made only when someone waits: most replies are read at once (``get_nowait``) or
        # are already delivered when waited for, and an Event per reply costs more than the rest
        self._event: trio.Event | None = None
        self._value: R | None = None
        self._error: BaseException | None = None

    def set(self, value: R) -> None:
        """Deliver the answer; a second ``set``/``fail`` is a bug and raises."""
        self._check_open()
        self._value = value
        self._deliver()

    def fail(self, exc: BaseException) -> None:
        """Deliver an error; the asker's ``ask()`` re-raises ``exc``."""
        self._check_open()
        self._error = exc
        self._deliver()

    @property
    def done(self) -> bool:
        """True once ``set`` or ``fail`` has been called."""
        return self._done

    async def wait(self) -> R:
        """Wait for the answer and return it, or raise the delivered failure."""
        if self._done:
            await trio.lowlevel.checkpoint()
        else:
            if self._event is None:
                self._event = trio.Event()
            await self._event.wait()
        return self.get_nowait()

    def get_nowait(self) -> R:
        """The answer already delivered (or its failure, raised), without a scheduler pass;
        raises `trio.WouldBlock` if there is none yet."""
        if not self._done:
            raise trio.WouldBlock
        if self._error is not None:
            raise self._error
        return cast("R", self._value)

    def _deliver(self) -> None:
        self._done = True
        if self._event is not None:
            self._event.set()

    def _check_open(self) -> None:
        if self._done:
            raise RuntimeError("reply was already delivered")


class Actor(abc.ABC, Generic[M]):
    """Base class for actors handling messages of type ``M``.

    The mailbox belongs to the actor, not to ``run()``, because a supervisor may
    call ``run()`` again after a crash: messages queued while the actor was
    down must survive into the next incarnation, and senders keep a valid
    handle to it the whole time. It is made on first use: making a channel
    costs more than the rest of an actor, and an actor of one request (a
    2026-07-28 HTTP client) usually never gets mail.
    """

    def __init__(self, name: str, *, mailbox_size: int = 128) -> None:
        self.name = name
        self._mailbox_size = mailbox_size
        self._mailbox: tuple[trio.MemorySendChannel[M], trio.MemoryReceiveChannel[M]] | None = None
        self._scope: trio.CancelScope | None = None
        self._receiving = False  # waiting in the channel's receive
        #: sent and not yet taken by this actor's task: counted here rather than asked of the
        #: channel, whose statistics are an object per question (asked on every bypass check)
        self._unreceived = 0

    # -- sending -----------------------------------------------------------

    async def tell(self, msg: M) -> None:
        """Queue ``msg``, waiting while the mailbox is full (backpressure, never drops).

        With room in the mailbox this queues without a scheduler pass (the receiver is woken
        all the same): on the gateway's hot path every message crosses two or three mailboxes.
        """
        send = self._mailbox_channel()[0]
        try:
            send.send_nowait(msg)
        except trio.WouldBlock:
            self._unreceived += 1  # before: the receiver may take it before this task runs again
            try:
                await send.send(msg)
            except BaseException:  # not sent (cancelled while the mailbox was full)
                self._unreceived -= 1
                raise
        else:
            self._unreceived += 1

    def tell_nowait(self, msg: M) -> None:
        """Queue ``msg`` or raise `MailboxFull` right away."""
        try:
            self._mailbox_channel()[0].send_nowait(msg)
        except trio.WouldBlock:
            raise MailboxFull(
                f"mailbox of actor {self.name!r} is full ({self._mailbox_size} messages)"
            ) from None
        self._unreceived += 1

    async def ask(self, make: Callable[[Reply[R]], M], *, timeout: float) -> R:
        """Send ``make(reply)`` and wait for the handler to answer through ``reply``.

        ``timeout`` covers both waiting for mailbox space and waiting for the
        answer, so a wedged actor can never hang the caller.
        """
        reply: Reply[R] = Reply()
        msg = make(reply)
        try:
            with trio.fail_after(timeout):
                await self.tell(msg)
                return await reply.wait()
        except trio.TooSlowError:
            raise AskTimeout(f"actor {self.name!r} did not reply within {timeout}s") from None

    def mailbox_depth(self) -> int:
        """Number of messages waiting in the mailbox."""
        return 0 if self._mailbox is None else self._mailbox[1].statistics().current_buffer_used

    def _mailbox_channel(self) -> tuple[trio.MemorySendChannel[M], trio.MemoryReceiveChannel[M]]:
        """The mailbox, made on first use."""
        if self._mailbox is None:
            self._mailbox = trio.open_memory_channel[M](self._mailbox_size)
        return self._mailbox

    @property
    def has_unreceived(self) -> bool:
        """True while a message is queued, or was handed straight to this actor waiting for one
        and it has not run since: `mailbox_depth` does not count that one.

        A sender that may bypass the mailbox (write straight to the stream the actor owns)
        must do so only when this is False, or it would overtake a message sent before.
        """
        return self._unreceived > 0

    @property
    def idle(self) -> bool:
        """Waiting for mail, with none queued or handed over yet.

        The idle-writer bypass: while an actor that writes to a stream is idle, a task that has
        the next thing to write may write it past the mailbox itself (one task hop less)
        without overtaking anything sent before it.
        """
        return self._receiving and not self.has_unreceived

    # -- running -----------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Handle messages one at a time until `stop` is called.

        An exception from ``handle`` is deliberately not caught: it ends this
        incarnation abnormally so the supervisor can apply its restart policy.
        """
        with self.incarnation():
            await self.on_start()
            task_status.started()
            while True:
                await self.handle(await self._wait_for_message())
                # What is already queued is handled without a scheduler pass between messages (a
                # channel's receive always yields): the tasks this actor feeds then see the whole
                # burst at once and can batch it, instead of being woken once per message.
                for _ in range(self._mailbox_size):
                    try:
                        msg = self.receive_nowait()
                    except trio.WouldBlock:
                        break
                    await self.handle(msg)

    async def on_start(self) -> None:
        """Hook run at the start of every incarnation, before reporting started."""

    async def handle(self, msg: M) -> None:
        """Process one message: what the default ``run`` does with each. An actor whose loop is
        its own (a writer taking its mailbox in batches) overrides ``run`` instead."""
        raise NotImplementedError(f"{type(self).__name__} overrides neither handle() nor run()")

    async def receive(self) -> M:
        """Take the next message, waiting for one (for subclasses overriding ``run``)."""
        return await self._wait_for_message()

    async def _wait_for_message(self) -> M:
        self._receiving = True
        try:
            msg = await self._mailbox_channel()[1].receive()
        finally:
            self._receiving = False
        self._unreceived -= 1
        return msg

    def receive_nowait(self) -> M:
        """Take the next message or raise `trio.WouldBlock`."""
        if not self._unreceived:  # nothing sent and not taken: the mailbox is empty (or unmade)
            raise trio.WouldBlock
        msg = self._mailbox_channel()[1].receive_nowait()
        self._unreceived -= 1
        return msg

    async def receive_batch(self, limit: int) -> list[M]:
        """Wait for one message, then take what else is already queued, up to ``limit`` in all.

        An actor that writes to a stream pays one write per batch instead of one per message.
        With a message already waiting this returns without a scheduler pass (a channel's
        ``receive`` always makes one), so it is not a checkpoint then: the caller's loop must
        have one of its own, as a write to a stream does.
        """
        try:
            batch = [self.receive_nowait()]
        except trio.WouldBlock:
            batch = [await self._wait_for_message()]
        while len(batch) < limit:
            try:
                batch.append(self.receive_nowait())
            except trio.WouldBlock:
                break
        return batch

    def drain_nowait(self, limit: int | None = None) -> list[M]:
        """Take every queued message, or the first ``limit``, without waiting (to answer them
        when an incarnation ends, or to handle them in batches)."""
        drained: list[M] = []
        if not self._unreceived:
            return drained
        receive = self._mailbox_channel()[1]
        while limit is None or len(drained) < limit:
            try:
                drained.append(receive.receive_nowait())
            except trio.WouldBlock:
                break
        self._unreceived -= len(drained)
        return drained

    @contextmanager
    def incarnation(self) -> Iterator[trio.CancelScope]:
        """Mark one incarnation of ``run()``; `stop` cancels the yielded scope.

        Subclasses that override ``run()`` wrap their body in this so `stop`
        and `running` keep working for them.  Leaving the block by `stop`
        counts as a normal return.
        """
        if self._scope is not None:
            raise RuntimeError(f"actor {self.name!r} is already running")
        scope = trio.CancelScope()
        self._scope = scope
        try:
            with scope:
                yield scope
        finally:
            self._scope = None

    def stop(self) -> None:
        """Ask the current incarnation to return normally; no-op if not running."""
        if self._scope is not None:
            self._scope.cancel()

    @property
    def running(self) -> bool:
        """True while an incarnation of ``run()`` is active."""
        return self._scope is not None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} depth={self.mailbox_depth()}>"
