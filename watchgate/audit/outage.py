"""The audit log's outages: when it fails, what becomes of the records meanwhile, and the
``recovered`` record that ends one.

``audit.on_failure`` decides: ``block`` keeps every entry (stamped when it happened) until the
log is writable again, and the gateway refuses new work with `AuditUnavailable`; ``continue``
counts the records lost and lets the gateway run. Either way the writer tries again once a
second (`due`), and the outage itself goes into the chain as a ``recovered`` record before
whatever waited (`recovery`). No I/O here: the audit actor writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Final

import msgspec

from actors import Reply
from watchgate.audit.record import RECOVERED, AuditEntry, AuditRecord
from watchgate.config.schema import AuditConfig
from watchgate.errors import AuditUnavailable

__all__ = ["RETRY_INTERVAL", "Confirm", "Outage"]

RETRY_INTERVAL: Final = 1.0  # seconds between attempts to write a failing log again
log = logging.getLogger("watchgate.audit")


class Confirm(msgspec.Struct, frozen=True):
    """An entry whose sender waits until its record is written (``AuditActor.write_and_confirm``).
    A struct, not a dataclass: one is made per answer, and a frozen dataclass's construction
    costs several times a struct's."""

    entry: AuditEntry
    reply: Reply[AuditRecord | None]
    #: the entry of the request this answers: written in the same batch, the two are one
    #: ``call`` record
    opened_by: AuditEntry | None = None


class Outage:
    def __init__(self, config: AuditConfig, wall_clock: Callable[[], float]) -> None:
        self._config = config
        self._clock = wall_clock
        self.last_error: str | None = None
        self.records_lost = 0  # in all
        self.since: float | None = None  # wall clock, for the ``recovered`` record; None: healthy
        self.retry_at = 0.0  # trio time
        self.pending: list[AuditEntry] = []  # kept under ``block``, written after the outage
        self._lost = 0  # in this outage

    @property
    def healthy(self) -> bool:
        return self.since is None

    def unavailable(self) -> AuditUnavailable:
        return AuditUnavailable(self._config.path, self.last_error or "unknown error")

    def due(self, now: float) -> bool:
        """Time to try the failing log again."""
        return not self.healthy and now >= self.retry_at

    def fail(self, exc: OSError, now: float) -> None:
        self.last_error = str(exc)
        self.retry_at = now + RETRY_INTERVAL
        if self.since is None:
            self.since = self._clock()
            log.error(
                "audit: cannot write %s: %s (audit.on_failure: %s)",
                self._config.path,
                exc,
                self._config.on_failure,
            )

    def refuse(self, batch: Sequence[AuditEntry | Confirm]) -> None:
        """Entries that cannot be written now: kept for later (block) or counted lost (continue)."""
        block = self._config.on_failure == "block"
        lost = 0
        for msg in batch:
            if isinstance(msg, Confirm):
                if block:
                    msg.reply.fail(self.unavailable())
                else:
                    msg.reply.set(None)
                    lost += 1
            elif block:  # stamped now: written after the outage, it still says when it happened
                at = self._clock() if msg.at is None else msg.at
                self.pending.append(msgspec.structs.replace(msg, at=at))
            else:
                lost += 1
        if lost:
            self.records_lost += lost
            self._lost += lost
            log.error(
                "audit: %d records lost, %s cannot be written (%s); %d lost in all",
                lost,
                self._config.path,
                self.last_error,
                self.records_lost,
            )

    def recovery(self) -> tuple[AuditEntry, list[AuditEntry]]:
        """What to write when the log works again: the ``recovered`` record, and what waited
        (taken: `still_failing` puts back what was not written)."""
        assert self.since is not None
        outage = self._clock() - self.since
        reason = f"the audit log is writable again after {outage:.1f} s (it failed with: {self.last_error})"
        if self._lost:
            reason += f"; {self._lost} records were lost (audit.on_failure: continue)"
        if self.pending:
            reason += f"; {len(self.pending)} records waited and follow"
        note = AuditEntry(event="lifecycle", method=RECOVERED, reason=reason)
        pending, self.pending = self.pending, []
        return note, pending

    def still_failing(self, unwritten: list[AuditEntry]) -> None:
        """The retry failed: what waited and was not written waits again."""
        self.pending = unwritten

    def recovered(self) -> None:
        assert self.since is not None
        log.warning("audit: %s is writable again after %.1f s", self._config.path, self._clock() - self.since)
        self.since = None
        self._lost = 0
