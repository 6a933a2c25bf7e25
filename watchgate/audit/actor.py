"""The audit actor: the one writer of the audit log.

Everyone else only ``tell``s it entries (or ``write_and_confirm`` one, to hold a response back
until its record is in the file). One writer means one chain head and no locks; its bounded
mailbox means a slow disk slows the gateway down instead of losing records or memory.

The common case skips the mailbox: when the log is healthy, no worker thread holds the file,
the batch needs no rotation and ``fsync`` is not ``always``, ``tell`` and `write_and_confirm`
seal and write their entry in the caller's task (after anything still queued, so the order
holds) with one ``write`` to the page cache. That keeps a task hop and a thread hop off every
tool call (ADR-016). What can really block (fsync, rotation, reopening) stays on a worker
thread in the actor's task.

When the log cannot be written, ``audit.on_failure`` decides: ``block`` refuses every new
entry with `AuditUnavailable` (the gateway answers the request with that error) until a retry,
once a second, succeeds; ``continue`` keeps the gateway running and counts the records lost.
Either way the outage itself is written into the chain as a ``recovered`` record afterwards
(``outage.py`` keeps that bookkeeping; this does the I/O).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Container, Sequence
from typing import Any, TypeVar

import trio

from actors import Actor, AskTimeout, Reply
from watchgate.answer_group import current_group
from watchgate.audit.chain import AppendResult, ChainWriter
from watchgate.audit.outage import RETRY_INTERVAL, Confirm, Outage
from watchgate.audit.record import AuditEntry, AuditRecord, AuditStatus, call_entry, recorded_payload
from watchgate.audit.sinks import Sink, SinkFan, build_sinks, run_blocking
from watchgate.config.schema import AuditConfig
from watchgate.errors import AuditLogInUse, AuditUnavailable

__all__ = [
    "RETRY_INTERVAL",
    "AuditActor",
    "AuditMessage",
    "AuditUnavailable",
    "Confirm",
]

log = logging.getLogger("watchgate.audit")

FLUSH_AFTER = 0.005  # a staged record waits at most this long for a write to join (group commit)
#: a request in flight waits at most this long for its answer, to be one ``call`` record with it:
#: longer than a call takes through a gateway under load (32 HTTP connections: ~16 ms a call)
HOLD_REQUEST_FOR = 0.05
BATCH_LIMIT = 256  # at most this many records per write (and at most mailbox_size)
T = TypeVar("T")


AuditMessage = AuditEntry | Confirm


class AuditActor(Actor[AuditMessage]):
    """Writes JSON Lines with a hash chain, rotates, fsyncs by policy, feeds the sinks.

    ``redact`` is defence in depth: the plugins redact before entries get here, and this is
    applied to every payload again before it is hashed. ``threaded=False`` does file I/O
    inline (tests, for deterministic time); ``wall_clock`` stamps the actor's own records.
    """

    def __init__(
        self,
        config: AuditConfig,
        *,
        name: str = "audit",
        redact: Callable[[Any], Any] | None = None,
        sinks: Sequence[Sink] | None = None,
        threaded: bool = True,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name, mailbox_size=config.mailbox_size)
        self.config = config
        self.redact = redact
        self.sinks = SinkFan(build_sinks(config.sinks, threaded=threaded) if sinks is None else sinks)
        self._threaded = threaded
        self._clock = wall_clock
        self._writer = ChainWriter(
            config.path,
            max_bytes=config.max_bytes,
            keep=config.keep,
            sync_on_rotate=config.fsync != "never",
            clock=wall_clock,
        )
        self.records_written = 0
        self._outage = Outage(config, wall_clock)  # what a failing log does (audit/outage.py)
        self._dirty_since: float | None = None  # trio time of the oldest write not yet synced
        self._side: list[AuditEntry | Confirm] = []  # written with the next batch
        self._staged: list[AuditEntry | Confirm] = []  # join the next write, at the latest at _fresh_at
        self._fresh_at = math.inf  # trio time: the oldest staged record's deadline
        #: requests in flight at a write, waiting for their answers (one ``call`` record each if
        #: they come in time), each with the deadline of its staging, oldest first
        self._held: dict[int, tuple[float, AuditEntry]] = {}  # by the entry's id
        self._flush_at = math.inf  # trio time: the first deadline of a staged or held record
        self._idle: trio.CancelScope | None = None  # the actor's wait, while it waits
        self._unsunk: list[AuditRecord] = []  # written in a caller's task, not yet given to the sinks
        self._io_busy = False  # a worker thread holds the file: callers must not write inline
        # The actor waits on this, never inside the channel's receive: a message handed straight
        # to a waiting receiver would be invisible to an inline writer, which must write it first.
        self._work = trio.Event()
        self._batch_limit = min(BATCH_LIMIT, config.mailbox_size)

    # -- the API the gateway uses ---------------------------------------------

    @property
    def healthy(self) -> bool:
        """False while the log cannot be written."""
        return self._outage.healthy

    @property
    def last_error(self) -> str | None:
        return self._outage.last_error

    @property
    def records_lost(self) -> int:
        return self._outage.records_lost

    async def tell(self, msg: AuditMessage) -> None:
        """Stage an entry for the next write or queue it, waiting while the mailbox is full;
        raises `AuditUnavailable` if blocked.

        Staged when it can be (group commit): nobody waits for this record, so it is sealed and
        written together with the next one somebody does wait for (the answer's, usually in
        the same scheduler pass), and at the latest `FLUSH_AFTER` later by the actor. Waking the
        actor for each request's record would cost more than the ``write`` itself. A request's
        record is held instead (`_hold`): its answer usually comes first."""
        if not self._admit():
            return
        if isinstance(msg, AuditEntry) and ((msg.event == "request" and self._hold(msg)) or self._stage(msg)):
            return
        await super().tell(msg)
        self._work.set()

    def tell_nowait(self, msg: AuditMessage) -> None:
        if self._admit():
            super().tell_nowait(msg)
            self._work.set()

    def record_nowait(self, entry: AuditEntry) -> None:
        """For synchronous callers (a supervisor's ``on_event``): never blocks, raises or drops.

        The entry skips the bounded mailbox, so this is for rare events only (lifecycle); a
        failing log treats it like any other entry (kept under block, counted lost under continue).
        """
        if not self.config.enabled:
            return
        self._side.append(entry)
        self._wake()

    async def write_and_confirm(
        self, entry: AuditEntry, *, timeout: float = 10.0, opened_by: AuditEntry | None = None
    ) -> AuditRecord | None:
        """Return once the record is written (and fsynced under ``fsync: always``).

        Returns the sealed record, or None when it was not written: the log is disabled, or
        it is failing under ``on_failure: continue``. Raises `AuditUnavailable` when failing
        under ``block``, and ``AskTimeout`` if the writer does not answer within ``timeout``.
        Inside an `AnswerGroup` it returns None at once, with the record staged: the group
        writes it and holds the answer until then. ``opened_by``: the entry told for the
        request this answers; if that is not written yet, the two are sealed as one ``call``
        record.
        """
        if not self.config.enabled:
            return None
        if opened_by is not None:
            held = self._held.pop(id(opened_by), None)
            if held is not None:  # the request's record waited for this: one record for both
                entry, opened_by = call_entry(held[1], entry), None
        reply: Reply[AuditRecord | None] = Reply()
        group = current_group()
        confirm = Confirm(entry, reply, opened_by)
        if group is not None and self._stage(confirm):
            group.defer(self, reply, timeout)
            return None
        if self._write_inline(confirm):
            try:
                return reply.get_nowait()  # written, or refused: no scheduler pass on the hot path
            except trio.WouldBlock:  # it waits for a rotation on the worker thread
                with trio.move_on_after(timeout):
                    return await reply.wait()
                raise AskTimeout(f"the audit log did not confirm a record within {timeout}s") from None
        return await self.ask(lambda reply: Confirm(entry, reply, opened_by), timeout=timeout)

    async def confirmed(self, reply: Reply[Any], timeout: float) -> None:
        """Wait for a record staged in an answer group that its flush handed to the actor (a
        rotation); what refuses its answer is raised."""
        with trio.move_on_after(timeout):
            await reply.wait()
            return
        error = f"no confirmation of the record within {timeout:g} s"
        raise AuditUnavailable(self.config.path, error)

    def flush_staged(self) -> None:
        """Write what is staged now (an answer group commits); the actor's task gets it when
        this task may not write."""
        if not self._staged:
            return
        if not self._write_inline(None):
            self._side += self._staged
            self._staged = []
            self._fresh_at = math.inf
            self._flush_at = self._first_deadline()
            self._wake()

    def claim(self) -> None:
        """Become the log's one writer now, at start-up: `AuditLogInUse` if another gateway is.
        A log that cannot be reached yet is left to the writer (it retries, -32011 meanwhile)."""
        if not self.config.enabled:
            return
        try:
            self._writer.claim()
        except AuditLogInUse:
            raise
        except OSError as exc:
            log.warning("audit: cannot lock %s yet: %s", self.config.path, exc)

    def release(self) -> None:
        """Give the log up without running (a gateway that never started)."""
        self._writer.close(sync=False)

    def status(self) -> AuditStatus:
        return AuditStatus(
            enabled=self.config.enabled,
            path=self.config.path,
            healthy=self.healthy,
            last_error=self.last_error,
            records_written=self.records_written,
            records_lost=self.records_lost,
            pending=len(self._outage.pending) + len(self._staged) + len(self._held),
            mailbox_depth=self.mailbox_depth(),
            sink_errors=self.sinks.errors,
        )

    def _inline_ok(self) -> bool:
        """Whether a caller's task may write now: see the module docstring."""
        if self._io_busy or not self.healthy or not self._writer.is_open or self.config.fsync == "always":
            return False
        return len(self._unsunk) < self._batch_limit  # else the sinks lag: the mailbox's backpressure applies

    def _hold(self, request: AuditEntry) -> bool:
        """Keep a request's entry back for its answer, up to `HOLD_REQUEST_FOR`: answered by
        then, the two are sealed as one ``call`` record (`write_and_confirm`); else the writer
        writes it alone when its time comes. False, having changed nothing, where an inline
        write would not be allowed, or when half a batch is held already (a flood: nobody
        comes back soon, so it is staged and written with the next write)."""
        if not self._inline_ok() or len(self._held) >= self._batch_limit // 2:
            return False
        at = trio.current_time() + HOLD_REQUEST_FOR
        self._held[id(request)] = (at, request)
        if at < self._flush_at:  # nothing is due before it (held requests come oldest first)
            self._flush_at = at
            if self._idle is not None and at < self._idle.deadline:
                self._idle.deadline = at
        return True

    def _stage(self, msg: AuditEntry | Confirm) -> bool:
        """Keep ``msg`` for the next write (after whatever is queued before it); False, having
        changed nothing, where an inline write would not be allowed either."""
        if not self._inline_ok():
            return False
        if len(self._staged) >= self._batch_limit:  # a long burst nobody waits on: write it now
            return self._write_inline(msg)
        if self.has_unreceived:
            self._staged += self.drain_nowait(self._batch_limit)
        self._staged.append(msg)
        if self._fresh_at == math.inf:
            self._fresh_at = trio.current_time() + FLUSH_AFTER
            if self._fresh_at < self._flush_at:  # else a held record's deadline comes first
                self._flush_at = self._fresh_at
                # only ever earlier: a scope's deadline costs ~2 µs to set, even to itself, and
                # an idle writer still waiting for an earlier one looks again when it wakes
                if self._idle is not None and self._flush_at < self._idle.deadline:
                    self._idle.deadline = self._flush_at
        return True

    def _write_inline(self, msg: AuditEntry | Confirm | None) -> bool:
        """Write ``msg`` (None: nothing of its own), and whatever is staged or queued before it,
        in the caller's task if that is safe and cheap (see the module docstring); False, having
        changed nothing, if it is not."""
        if not self._inline_ok():
            return False
        # At most one batch: draining a full mailbox also takes the messages of the tellers
        # blocked on it, which would let every one of them past a slow sink's backpressure.
        queued = self.drain_nowait(self._batch_limit)
        batch = self._take([*queued, *([] if msg is None else [msg])], None)
        if not batch:
            return True
        entries = [self._prepare(m.entry if isinstance(m, Confirm) else m) for m in batch]
        result = self._writer.append(entries, may_rotate=False)
        if result.needs_rotation:  # the actor rotates on its worker thread, then writes them
            self._side = batch
            self._wake()
            return True
        records = self._settle(batch, result)
        if records and self.sinks:
            self._unsunk += records
            self._wake()
        return True

    def _take(self, messages: list[AuditMessage], now: float | None) -> list[AuditEntry | Confirm]:
        """What to write now, in order: the side batch, the held requests whose time has come,
        staged records, ``messages``; a request staged or queued whose answer is among them is
        sealed with it (`_paired`; a held one was, when its answer came: `write_and_confirm`).

        The inline writer (``now`` None) writes no held request; the actor, waking at a deadline
        (``now``), writes those whose `HOLD_REQUEST_FOR` is over and holds the rest (``now``
        infinite: it holds none, at the end). Those not due are not even looked at: a write
        must not cost what is in flight."""
        side, self._side = self._side, []
        staged, self._staged = self._staged, []
        self._fresh_at = math.inf
        rest = [*staged, *messages]
        due: list[AuditEntry] = []
        if now is not None:
            held = self._held
            while held:
                key, (at, entry) = next(iter(held.items()))  # the oldest first
                if at > now:
                    break
                del held[key]
                due.append(entry)
        self._flush_at = self._first_deadline()
        return _paired([*side, *due, *rest], _answered(side, rest))

    def _first_deadline(self) -> float:
        """When the oldest held request must be written (they are held in staging order)."""
        return next(iter(self._held.values()))[0] if self._held else math.inf

    def _wake(self) -> None:
        self._work.set()

    def _admit(self) -> bool:
        if not self.config.enabled:
            return False
        if not self.healthy and self.config.on_failure == "block":
            raise self._outage.unavailable()
        return True

    # -- the writer's loop -----------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with self.incarnation():
            if not self.config.enabled:
                task_status.started()
                await trio.sleep_forever()
            try:
                if self.healthy:  # else an earlier incarnation failed: the retry below reopens
                    with trio.CancelScope(shield=True):
                        await self.sinks.emit(await self._open())
                task_status.started()
                while True:
                    if not (self.has_unreceived or self._side or self._unsunk):
                        with trio.move_on_at(self._deadline()) as self._idle:
                            await self._work.wait()
                        self._idle = None
                    self._work = trio.Event()
                    batch = self.drain_nowait(self._batch_limit)
                    # Taken from the mailbox, so answered, written and copied to every sink even
                    # if `stop` comes meanwhile: waiting for the mailbox is the only cancel point.
                    with trio.CancelScope(shield=True):
                        records = await self._write(batch)
                        unsunk, self._unsunk = self._unsunk, []
                        await self.sinks.emit(unsunk + records)
                        await self._sync_if_due()
            finally:
                with trio.CancelScope(shield=True):
                    await self._finish()

    async def _finish(self) -> None:
        """Write what is still queued, then sync and close; pending entries survive a restart."""
        records = await self._write(self.drain_nowait(), hold=False)
        unsunk, self._unsunk = self._unsunk, []
        await self.sinks.emit(unsunk + records)
        sync = self.config.fsync != "never"
        await self._blocking(lambda: self._writer.close(sync=sync))
        self.sinks.close()
        if self._outage.pending:
            log.warning(
                "audit: %d records are still waiting for %s", len(self._outage.pending), self.config.path
            )

    def _deadline(self) -> float:
        deadline = self._outage.retry_at if not self.healthy else self._flush_at
        if self._dirty_since is not None:
            deadline = min(deadline, self._dirty_since + self.config.fsync_interval)
        return deadline

    async def _blocking(self, fn: Callable[[], T]) -> T:
        self._io_busy = True
        try:
            return await run_blocking(fn, threaded=self._threaded)
        finally:
            self._io_busy = False

    async def _open(self) -> list[AuditRecord]:
        try:
            header = await self._blocking(self._writer.open)
        except OSError as exc:
            self._fail(exc)
            return []
        self._written([header])
        return [header]

    async def _write(self, messages: list[AuditMessage], *, hold: bool = True) -> list[AuditRecord]:
        """Write a batch (after recovering, if it is time to try); return what the sinks get.
        ``hold``: requests in flight whose deadline has not come may wait on (`_take`)."""
        batch = self._take(messages, trio.current_time() if hold else math.inf)
        records: list[AuditRecord] = []
        if self._outage.due(trio.current_time()):
            records += await self._recover()
        if not self.healthy:
            self._outage.refuse(batch)
            return records
        if not batch:
            return records
        entries = [self._prepare(m.entry if isinstance(m, Confirm) else m) for m in batch]
        sync = self.config.fsync == "always"
        result = self._writer.append(entries, may_rotate=False) if not sync else None
        if result is None or result.needs_rotation:
            result = await self._blocking(lambda: self._writer.append(entries, sync=sync))
        return records + self._settle(batch, result)

    def _settle(self, batch: Sequence[AuditEntry | Confirm], result: AppendResult) -> list[AuditRecord]:
        """Answer the confirms of what was written; refuse what was not."""
        self._written(result.records)
        for msg, record in zip(batch, result.sealed, strict=False):
            if isinstance(msg, Confirm):
                msg.reply.set(record)
        if result.error is not None:
            self._fail(result.error)
            self._outage.refuse(batch[len(result.sealed) :])
        return result.records

    async def _recover(self) -> list[AuditRecord]:
        """One retry: reopen if needed, record the outage, then write what waited."""
        note, pending = self._outage.recovery()
        sync = self.config.fsync == "always"

        def attempt() -> AppendResult:
            header = self._writer.open()  # every failure closed the file: start from a fresh open
            result = self._writer.append([note, *pending], sync=sync)
            result.records.insert(0, header)
            return result

        try:
            result = await self._blocking(attempt)
        except OSError as exc:
            self._outage.still_failing(pending)
            self._fail(exc)
            return []
        self._written(result.records)
        if result.error is not None:
            self._outage.still_failing(pending[max(0, len(result.sealed) - 1) :])
            self._fail(result.error)
        else:
            self._outage.recovered()
        return result.records

    def _prepare(self, entry: AuditEntry) -> AuditEntry:
        return recorded_payload(entry, self.config.include_payloads, self.redact)

    def _written(self, records: list[AuditRecord]) -> None:
        self.records_written += len(records)
        if records and self.config.fsync == "interval" and self._dirty_since is None:
            self._dirty_since = trio.current_time()
            self._wake()  # an idle actor waits with no deadline: it must learn the sync is due

    def _fail(self, exc: OSError) -> None:
        self._dirty_since = None
        self._outage.fail(exc, trio.current_time())

    async def _sync_if_due(self) -> None:
        if self._dirty_since is None or trio.current_time() < self._dirty_since + self.config.fsync_interval:
            return
        self._dirty_since = None
        try:
            await self._blocking(self._writer.fsync)
        except OSError as exc:
            self._fail(exc)


def _answered(*batches: Sequence[AuditEntry | Confirm]) -> dict[int, None]:
    """The request entries (by identity) whose answers are in ``batches``, in the answers' order."""
    return {
        id(m.opened_by): None
        for batch in batches
        for m in batch
        if isinstance(m, Confirm) and m.opened_by is not None
    }


def _paired(batch: list[AuditEntry | Confirm], answered: Container[int]) -> list[AuditEntry | Confirm]:
    """``batch`` with each request whose answer is in it (``answered``: `_answered` of it) sealed
    together with that answer, as one ``call`` record in the answer's place (a request's record
    is never written after its answer's, so the one record says all the two would)."""
    if not answered:
        return batch
    present = {id(m) for m in batch if isinstance(m, AuditEntry) and id(m) in answered}
    if not present:
        return batch
    paired: list[AuditEntry | Confirm] = []
    for m in batch:
        if isinstance(m, AuditEntry):
            if id(m) not in present:
                paired.append(m)
        elif m.opened_by is not None and id(m.opened_by) in present:
            paired.append(Confirm(call_entry(m.opened_by, m.entry), m.reply))
        else:
            paired.append(m)
    return paired
