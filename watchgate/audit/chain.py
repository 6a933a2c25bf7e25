"""The file side of the audit log: append sealed records, rotate by size, keep the chain whole.

Everything here is blocking file I/O and runs in a worker thread on behalf of the audit actor,
one call at a time. The in-memory chain state (next ``seq``, last ``hash``) only ever moves
after bytes reached the file, so after any failure it still describes the file exactly, and
the partial bytes of a failed write are cut off again before the file is abandoned.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec

from watchgate.audit.files import rotated_files
from watchgate.audit.record import (
    GENESIS,
    RESUME,
    ROTATE,
    AuditEntry,
    AuditRecord,
    decode_record,
    seal_line,
)
from watchgate.errors import AuditLogInUse

__all__ = ["AppendResult", "ChainWriter"]

log = logging.getLogger("watchgate.audit")

_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_TAIL_BLOCK = 65536


@dataclass
class AppendResult:
    """``sealed`` has one record per entry written, in order; entries past it were not written.
    ``records`` is everything written, rotation headers included (what the sinks get)."""

    records: list[AuditRecord] = field(default_factory=list)
    sealed: list[AuditRecord] = field(default_factory=list)
    error: OSError | None = None
    needs_rotation: bool = False  # ``may_rotate=False`` and the batch did not fit: nothing written


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_tail(fd: int, size: int) -> tuple[bytes | None, bytes]:
    """(the last complete line without its newline, the bytes after the last newline).

    Reads backwards in blocks, so opening a 10 MiB log costs one or two small reads.
    """
    buf, pos = b"", size
    while pos > 0:
        start = max(0, pos - _TAIL_BLOCK)
        buf = os.pread(fd, pos - start, start) + buf
        pos = start
        end = buf.rfind(b"\n")
        if end >= 0:
            begin = buf.rfind(b"\n", 0, end)
            if begin >= 0 or pos == 0:
                return buf[begin + 1 : end], buf[end + 1 :]
    return None, buf


class ChainWriter:
    """The one owner of the current log file and of the chain's head."""

    def __init__(
        self,
        path: str,
        *,
        max_bytes: int,
        keep: int,
        sync_on_rotate: bool = True,
        clock: Callable[[], float],
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self.sync_on_rotate = sync_on_rotate
        self._clock = clock
        self._fd: int | None = None
        self._lock_fd: int | None = None  # flock on <path>.lock: one writer per log, held until release()
        self._size = 0
        self._records_in_file = 0
        self.seq = 0
        self.last_hash = ""

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    # -- opening -------------------------------------------------------------

    def open(self) -> AuditRecord:
        """Open (or create) the current file, find the chain's head, write a header record.

        The header says how this file continues the chain: ``genesis`` (a new log),
        ``rotate`` (the previous file was rotated away), or ``resume`` (the writer restarted
        on an existing file). Returns the header; raises ``OSError`` if the file is unusable.
        """
        self._close_file(sync=False)  # an earlier incarnation that died mid-way may have left it open
        folder = os.path.dirname(self.path) or "."
        if not os.path.exists(folder):  # a file in its place: let open() say "Not a directory"
            os.makedirs(folder, exist_ok=True)
        self.claim()
        fd = os.open(self.path, _FLAGS, 0o600)
        try:
            entry = self._continue(fd)
            self._fd, self._size = fd, os.fstat(fd).st_size
            self._records_in_file = 0 if self._size == 0 else 1
            header, line = seal_line(entry, seq=self.seq, prev_hash=self.last_hash, now=self._clock())
            self._commit([line], [header])
        except OSError:
            self._fd = None
            os.close(fd)
            raise
        return header

    def claim(self) -> None:
        """Become the log's one writer: an exclusive ``flock`` on the current file, held on a
        descriptor of its own (taken again on the new file after a rotation); `AuditLogInUse`
        if another process holds it."""
        if self._lock_fd is not None:
            return
        fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AuditLogInUse(
                f"the audit log {self.path} is in use by another Watchgate: one log has one writer; "
                "stop that one, or give this gateway a log of its own (`--audit-log PATH`)"
            ) from None
        self._lock_fd = fd

    def release(self) -> None:
        """Give up the log (after the last `close`): another writer may take it."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing drops the flock

    def _continue(self, fd: int) -> AuditEntry:
        """Set ``seq``/``last_hash`` from what is on disk; return the header entry that explains it."""
        name = os.path.basename(self.path)
        size = os.fstat(fd).st_size
        last, partial = _read_tail(fd, size)
        notes = []
        if partial:
            os.ftruncate(fd, size - len(partial))
            digest = hashlib.sha256(partial).hexdigest()
            notes.append(f"discarded an incomplete last line of {len(partial)} bytes (sha256 {digest})")
        if last is not None:
            if self._take_head(last, name, notes):
                notes.insert(0, f"the audit writer reopened {name}; the chain continues")
                return self._lifecycle(RESUME, notes)
        else:
            previous = rotated_files(self.path).get(1)
            if previous is not None:
                with open(previous, "rb") as stream:
                    last, _ = _read_tail(stream.fileno(), os.fstat(stream.fileno()).st_size)
                old = os.path.basename(previous)
                if last is not None and self._take_head(last, old, notes):
                    notes.insert(0, f"continues from {old}, which ends at seq {self.seq - 1}")
                    return self._lifecycle(ROTATE, notes)
        self.seq, self.last_hash = 0, secrets.token_hex(32)
        notes.insert(0, "a new audit chain starts here")
        return self._lifecycle(GENESIS, notes)

    def _take_head(self, line: bytes, name: str, notes: list[str]) -> bool:
        try:
            record = decode_record(line)
        except msgspec.DecodeError as exc:
            problem = str(exc)
        else:
            self.seq, self.last_hash = record.seq + 1, record.hash
            return True
        log.error("audit: the last record of %s cannot be read (%s); starting a new chain", name, problem)
        notes.append(f"the last record of {name} could not be read ({problem})")
        return False

    def _lifecycle(self, kind: str, notes: list[str]) -> AuditEntry:
        return AuditEntry(event="lifecycle", method=kind, reason="; ".join(notes))

    # -- writing -------------------------------------------------------------

    def append(
        self, entries: Sequence[AuditEntry], *, sync: bool = False, may_rotate: bool = True
    ) -> AppendResult:
        """Seal and write ``entries`` in order, rotating first whenever the next one would not fit.

        Never raises ``OSError``: a failure is returned with what was written before it, and
        the file is abandoned (closed) so the next attempt starts from a fresh ``open``. With
        ``may_rotate=False`` a batch that would need a rotation writes nothing and comes back
        with ``needs_rotation`` set: rotating (renames, fsyncs) is for a worker thread.
        """
        result = AppendResult()
        if self._fd is None:
            result.error = OSError(f"{self.path} is not open")
            return result
        lines: list[bytes] = []
        batch: list[AuditRecord] = []
        now = self._clock()  # one time for the batch: its records are sealed and written together
        try:
            pending = self._size
            for entry in entries:
                prev_hash = batch[-1].hash if batch else self.last_hash
                record, line = seal_line(entry, seq=self.seq + len(batch), prev_hash=prev_hash, now=now)
                rotatable = self._records_in_file + len(batch) > 1
                if rotatable and pending + len(line) > self.max_bytes:
                    if not may_rotate:
                        result.needs_rotation = True
                        return result
                    self._commit(lines, batch)
                    result.records += batch
                    result.sealed += batch
                    lines, batch = [], []
                    result.records.append(self._rotate())
                    now = self._clock()  # after the rotation's record: times never go backwards
                    record, line = seal_line(entry, seq=self.seq, prev_hash=self.last_hash, now=now)
                    pending = self._size
                lines.append(line)
                batch.append(record)
                pending += len(line)
            self._commit(lines, batch)
            result.records += batch
            result.sealed += batch
            if sync:
                os.fsync(self._fd)
        except OSError as exc:
            result.error = exc
            self._abandon()
        return result

    def _commit(self, lines: list[bytes], batch: list[AuditRecord]) -> None:
        """Write one run of lines; the chain head moves only once they are all in the file."""
        if not batch:
            return
        assert self._fd is not None
        data = b"".join(lines)
        _write_all(self._fd, data)
        self._size += len(data)
        self._records_in_file += len(batch)
        self.seq = batch[-1].seq + 1
        self.last_hash = batch[-1].hash

    def _rotate(self) -> AuditRecord:
        """Shift ``path.N`` up by one, move ``path`` to ``path.1``, start ``path`` with a rotate record."""
        assert self._fd is not None
        if self.sync_on_rotate:
            os.fsync(self._fd)
        fd, self._fd = self._fd, None
        os.close(fd)
        rotated = rotated_files(self.path)
        for number in sorted(rotated, reverse=True):
            if number >= self.keep:
                os.remove(rotated[number])
            else:
                os.replace(rotated[number], f"{self.path}.{number + 1}")
        os.replace(self.path, f"{self.path}.1")
        self._fd = os.open(self.path, _FLAGS, 0o600)
        self.release()  # the lock was on the file that is now .1
        self.claim()
        self._size, self._records_in_file = 0, 0
        self._sync_directory()
        notes = [f"continues from {os.path.basename(self.path)}.1, which ends at seq {self.seq - 1}"]
        header, line = seal_line(
            self._lifecycle(ROTATE, notes), seq=self.seq, prev_hash=self.last_hash, now=self._clock()
        )
        self._commit([line], [header])
        return header

    def _sync_directory(self) -> None:
        """Make the renames themselves durable, not only the data in the files."""
        if not self.sync_on_rotate:
            return
        fd = os.open(os.path.dirname(self.path) or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _abandon(self) -> None:
        """After a failed write: cut the file back to its last whole record and close it."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, self._size)
        except OSError as exc:
            log.warning("audit: cannot cut %s back to %d bytes: %s", self.path, self._size, exc)
        self._close_fd(fd)

    def fsync(self) -> None:
        """Push written records to the disk; a failure abandons the file like a failed write."""
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)
        except OSError:
            self._abandon()
            raise

    def close(self, *, sync: bool) -> None:
        """Close the file, syncing it first when asked, and give the log up (`release`); errors
        are logged, closing still happens."""
        self._close_file(sync=sync)
        self.release()

    def _close_file(self, *, sync: bool) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if sync:
            try:
                os.fsync(fd)
            except OSError as exc:
                log.warning("audit: fsync of %s failed while closing: %s", self.path, exc)
        self._close_fd(fd)

    def _close_fd(self, fd: int) -> None:
        try:
            os.close(fd)
        except OSError as exc:
            log.warning("audit: closing %s failed: %s", self.path, exc)
