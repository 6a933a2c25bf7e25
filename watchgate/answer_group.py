"""Group commit: the answers of one burst held until the records written for them are durable.

The audit log promises that a client never holds an answer the log does not (design.md
§8). Written one answer at a time, that costs one ``write`` per answer. When an upstream
sends a burst (every answer already read from its pipe), its reader opens an `AnswerGroup`
around the burst: each record a hook writes for an answer is only *staged* (``defer``), each
answer is *held* (``hold``), and when the burst has been handled, ``commit`` writes every staged
record with one ``write`` and then releases the answers in order. An answer whose record could
not be written is released as that error instead (-32011), exactly as without the group.

The group is found through a context variable, so the hooks in between need not know about it:
a hook that has no group (any other task) writes and waits as before.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, Protocol

import trio

from actors import Reply
from watchgate.errors import JsonRpcError, PolicyDenied

__all__ = ["AnswerGroup", "GroupCommit", "Release", "StagedWriter", "current_group"]

_log = logging.getLogger("watchgate.answers")

#: Sends one held answer: None sends it as it is, an error sends that error in its place.
Release = Callable[[JsonRpcError | None], Awaitable[None]]

_current: ContextVar[AnswerGroup | None] = ContextVar("watchgate_answer_group", default=None)


class StagedWriter(Protocol):
    def flush_staged(self) -> None:
        """Write everything staged now, in the caller's task (or hand it to the writer's own)."""

    async def confirmed(self, reply: Reply[Any], timeout: float) -> None:
        """Wait until the record ``reply`` stands for is written (`flush_staged` handed it on);
        raise the ``JsonRpcError`` that refuses its answer."""


#: One staged record: its writer, the reply its writing fills in, how long to wait for that.
_Staged = tuple[StagedWriter, Reply[Any], float]


def current_group() -> AnswerGroup | None:
    """The group of the burst this task is handling, if any."""
    return _current.get()


class AnswerGroup:
    def __init__(self) -> None:
        self._writers: list[StagedWriter] = []
        self._waits: list[_Staged] = []  # staged since the last held answer: that answer's records
        self._held: list[tuple[list[_Staged], Release, Callable[[], bool] | None]] = []

    @property
    def holding(self) -> bool:
        """Whether ``commit`` has anything to do."""
        return bool(self._writers or self._held)

    def defer(self, writer: StagedWriter, reply: Reply[Any], timeout: float) -> None:
        """``writer`` staged a record for the next answer; ``reply`` is delivered once it is
        written (a failure delivered refuses the answer), ``timeout`` after the commit at the
        latest."""
        if writer not in self._writers:
            self._writers.append(writer)
        self._waits.append((writer, reply, timeout))

    def hold(self, release: Release, *, at_once: Callable[[], bool] | None = None) -> bool:
        """Hold an answer until ``commit``; False (nothing held) when no record waits for it and
        no answer is held before it, so it may go at once. ``at_once``: says, when asked, that
        ``release`` would finish without waiting (so without a checkpoint, where a cancellation
        could cut it short); None: it may always wait."""
        if not self._waits and not self._held:
            return False
        waits, self._waits = self._waits, []
        self._held.append((waits, release, at_once))
        return True

    async def commit(self) -> None:
        """Write what was staged (one write per writer), then release the answers in order.

        However the burst ends (its reader cancelled: an upstream crashed or is restarted), every
        answer held is released: while nothing has to wait — the records written by the flush,
        the release going at once — nothing can be interrupted and the answers go as they are;
        from the first one that must wait, the rest go in a shielded cancel scope (it costs
        ~7 µs, more than the rest of a quick burst's commit, so only then)."""
        writers, self._writers = self._writers, []
        for writer in writers:
            writer.flush_staged()
        held, self._held = self._held, []
        for index, (waits, release, at_once) in enumerate(held):
            if at_once is None or not at_once() or not all(reply.done for _, reply, _ in waits):
                with trio.CancelScope(shield=True):
                    for rest_waits, rest_release, _ in held[index:]:
                        await rest_release(await _verdict(rest_waits))
                return
            await release(await _verdict(waits))  # neither waits: no checkpoint


async def _verdict(waits: list[_Staged]) -> JsonRpcError | None:
    """None once every record an answer waits for is written; else the error that refuses it."""
    error: JsonRpcError | None = None
    for writer, reply, timeout in waits:
        try:
            if reply.done:  # written in the flush: the common case, no waiting
                reply.get_nowait()
            else:
                await writer.confirmed(reply, timeout)
        except JsonRpcError as exc:
            error = exc
        except Exception:  # a bug in a writer: refuse the answer, as the hook chain would
            _log.exception("a held answer's record failed")
            error = PolicyDenied("audit", "internal error in the gateway's message hook")
    return error


class GroupCommit:
    """Hold the answers of the code inside; they are released when it ends, however it ends
    (an upstream that crashes mid-burst loses none of the answers it gave: `AnswerGroup.commit`).
    A class rather than a generator: it is entered once per burst of every upstream."""

    __slots__ = ("_group", "_token")

    async def __aenter__(self) -> AnswerGroup:
        self._group = AnswerGroup()
        self._token = _current.set(self._group)
        return self._group

    async def __aexit__(self, *exc_info: object) -> None:
        _current.reset(self._token)
        if self._group.holding:
            await self._group.commit()
