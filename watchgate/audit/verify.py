"""Checking the hash chain of a whole audit log, across its rotated files.

What it proves: every record's ``hash`` matches its content (nothing edited), every record's
``prev_hash`` is the hash of the record before it and ``seq`` counts up by one (nothing
removed, inserted or reordered), every file after the first starts with a ``rotate`` record
and no numbered file is missing in between. It stops at the first problem, because after a
break everything later is suspect and one precise place is what an investigator needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import msgspec

from watchgate.audit.files import LogLine, log_files, read_lines, rotated_files
from watchgate.audit.record import GENESIS, ROTATE, AuditRecord, compute_hash, decode_record

__all__ = ["VerifyResult", "verify_log"]


@dataclass
class VerifyResult:
    """The outcome; when ``ok`` is false, ``problem`` says what and ``file``/``line`` where."""

    ok: bool = True
    records: int = 0
    files: list[str] = field(default_factory=list)
    first_time: str | None = None
    last_time: str | None = None
    last_hash: str | None = None
    starts_at_rotation: bool = False
    problem: str | None = None
    file: str | None = None
    line: int | None = None
    seq: int | None = None
    expected: str | None = None
    found: str | None = None

    def fail(
        self,
        problem: str,
        where: LogLine | None = None,
        *,
        seq: int | None = None,
        expected: str | None = None,
        found: str | None = None,
    ) -> VerifyResult:
        self.ok, self.problem, self.seq = False, problem, seq
        self.expected, self.found = expected, found
        if where is not None:
            self.file, self.line = where.file, where.number
        return self

    def report(self) -> list[str]:
        """Lines for a person: ``ok: …`` or ``broken: …`` with expected and found values."""
        if self.ok:
            lines = [f"ok: {self.records} records, first {self.first_time}, last {self.last_time}"]
            lines.append(f"files: {len(self.files)}, last hash {self.last_hash}")
            if self.starts_at_rotation:
                lines.append("the kept history starts at a rotation: older files were removed (audit.keep)")
            return lines
        where = f"{self.file} line {self.line}" if self.file is not None else "log"
        if self.seq is not None:
            where += f" (seq {self.seq})"
        lines = [f"broken: {where}: {self.problem}"]
        if self.expected is not None:
            lines += [f"  expected: {self.expected}", f"  found:    {self.found}"]
        return lines


def _missing_file(path: str) -> str | None:
    """A numbered file absent between others, or the current file absent after rotated ones."""
    numbers = sorted(rotated_files(path))
    for expected, number in enumerate(numbers, start=1):
        if number != expected:
            return f"{path}.{expected}"
    if numbers and not os.path.exists(path):
        return path
    return None


def verify_log(path: str) -> VerifyResult:
    """Verify the log whose current file is ``path``; see the module docstring for what is checked."""
    result = VerifyResult(files=log_files(path))
    if not result.files:
        return result.fail(f"no audit log at {path}")
    missing = _missing_file(path)
    if missing is not None:
        return result.fail(f"missing file {missing}: the files around it exist, so it was removed")
    previous: AuditRecord | None = None
    for index, file in enumerate(result.files):
        for line in read_lines(file):
            if not line.complete:
                if index == len(result.files) - 1:
                    problem = (
                        f"the last line is incomplete ({len(line.data)} bytes, no newline): a write "
                        f"was cut short; the {result.records} records before it verify"
                    )
                else:
                    problem = "an incomplete line in the middle of the log"
                return result.fail(problem, line)
            try:
                record = decode_record(line.data)
            except msgspec.DecodeError as exc:
                return result.fail(f"not a valid audit record ({exc})", line)
            expected = compute_hash(record)
            if record.hash != expected:
                problem = "hash mismatch: the record was altered after it was written"
                return result.fail(problem, line, seq=record.seq, expected=expected, found=record.hash)
            if previous is None:
                if record.event != "lifecycle" or record.method not in (GENESIS, ROTATE):
                    problem = "the first record is not a genesis or rotate record: the start is missing"
                    return result.fail(problem, line, seq=record.seq)
                result.starts_at_rotation = record.method == ROTATE
                result.first_time = record.time
            else:
                broken = _link_problem(previous, record)
                if broken is not None:
                    problem, want, got = broken
                    return result.fail(problem, line, seq=record.seq, expected=want, found=got)
                if line.number == 1 and record.method != ROTATE:
                    return result.fail(f"{file} does not start with a rotate record", line, seq=record.seq)
            previous = record
            result.records += 1
            result.last_time, result.last_hash = record.time, record.hash
    if previous is None:
        return result.fail(f"the audit log at {path} holds no records")
    return result


def _link_problem(previous: AuditRecord, record: AuditRecord) -> tuple[str, str, str] | None:
    """(what is wrong, expected, found) when ``record`` does not follow ``previous``."""
    if record.prev_hash != previous.hash:
        if record.method == GENESIS:
            cause = "a new chain was started here"
        else:
            cause = "a record was removed, reordered or inserted"
        return f"prev_hash does not match the previous record: {cause}", previous.hash, record.prev_hash
    if record.seq != previous.seq + 1:
        return "seq does not follow the previous record", str(previous.seq + 1), str(record.seq)
    return None
