"""``verify_log`` catches every kind of tampering the chain is meant to reveal."""

from __future__ import annotations

from pathlib import Path

import msgspec

from watchgate.audit.chain import ChainWriter
from watchgate.audit.record import AuditEntry, compute_hash, encode_line, seal
from watchgate.audit.verify import verify_log

from .helpers import T0, Clock, call, edit, lines, records, write_log


def rotated_log(tmp_path: Path) -> Path:
    """A log over four files: audit.jsonl.3 (genesis) … audit.jsonl."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 12, max_bytes=1450, keep=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "audit.jsonl",
        "audit.jsonl.1",
        "audit.jsonl.2",
        "audit.jsonl.3",
    ]
    return path


def test_an_intact_log_verifies(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    result = verify_log(str(path))
    every = records(path)
    assert result.ok and result.records == 4 and not result.starts_at_rotation
    assert (result.first_time, result.last_time, result.last_hash) == (
        every[0].time,
        every[-1].time,
        every[-1].hash,
    )
    assert result.report() == [
        f"ok: 4 records, first {every[0].time}, last {every[-1].time}",
        f"files: 1, last hash {every[-1].hash}",
    ]


def test_an_intact_rotated_log_verifies_across_files(tmp_path: Path) -> None:
    path = rotated_log(tmp_path)
    result = verify_log(str(path))
    assert result.ok and result.records == 13 + 3 and len(result.files) == 4


def test_an_edited_field(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    content = lines(path)
    original = records(path)[2]
    content[2] = edit(content[2], decision="allow")
    path.write_bytes(b"".join(content))
    result = verify_log(str(path))
    assert not result.ok
    assert (result.file, result.line, result.seq) == (str(path), 3, 2)
    assert result.found == original.hash and result.expected != original.hash
    assert result.report() == [
        f"broken: {path} line 3 (seq 2): hash mismatch: the record was altered after it was written",
        f"  expected: {result.expected}",
        f"  found:    {original.hash}",
    ]


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    content = lines(path)
    forged = msgspec.structs.replace(records(path)[1], client="someone-else")
    forged = msgspec.structs.replace(forged, hash=compute_hash(forged))
    content[1] = encode_line(forged)
    path.write_bytes(b"".join(content))
    result = verify_log(str(path))
    assert (result.ok, result.line) == (False, 3)
    assert result.problem is not None and "prev_hash does not match" in result.problem


def test_a_deleted_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 4)
    content = lines(path)
    every = records(path)
    del content[2]
    path.write_bytes(b"".join(content))
    result = verify_log(str(path))
    assert (result.ok, result.line, result.seq) == (False, 3, 3)
    assert (
        result.problem
        == "prev_hash does not match the previous record: a record was removed, reordered or inserted"
    )
    assert (result.expected, result.found) == (every[1].hash, every[2].hash)


def test_reordered_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 4)
    content = lines(path)
    content[2], content[3] = content[3], content[2]
    path.write_bytes(b"".join(content))
    result = verify_log(str(path))
    assert (result.ok, result.line, result.seq) == (False, 3, 3)


def test_a_removed_middle_file(tmp_path: Path) -> None:
    path = rotated_log(tmp_path)
    (tmp_path / "audit.jsonl.2").unlink()
    result = verify_log(str(path))
    assert not result.ok
    assert result.problem == f"missing file {path}.2: the files around it exist, so it was removed"
    assert result.report() == [f"broken: log: {result.problem}"]


def test_a_middle_file_removed_and_the_rest_renumbered(tmp_path: Path) -> None:
    path = rotated_log(tmp_path)
    (tmp_path / "audit.jsonl.2").unlink()
    (tmp_path / "audit.jsonl.3").rename(tmp_path / "audit.jsonl.2")
    result = verify_log(str(path))
    assert (result.ok, result.file, result.line) == (False, f"{path}.1", 1)
    assert result.problem is not None and "prev_hash does not match" in result.problem


def test_a_removed_current_file(tmp_path: Path) -> None:
    path = rotated_log(tmp_path)
    path.unlink()
    result = verify_log(str(path))
    assert result.problem == f"missing file {path}: the files around it exist, so it was removed"


def test_oldest_files_removed_by_retention_still_verify(tmp_path: Path) -> None:
    path = rotated_log(tmp_path)
    (tmp_path / "audit.jsonl.3").unlink()
    result = verify_log(str(path))
    assert result.ok and result.starts_at_rotation
    assert (
        result.report()[-1] == "the kept history starts at a rotation: older files were removed (audit.keep)"
    )


def test_a_truncated_tail(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    data = path.read_bytes()
    path.write_bytes(data[:-20])
    result = verify_log(str(path))
    assert (result.ok, result.line) == (False, 4)
    assert result.problem is not None
    assert result.problem.startswith("the last line is incomplete (")
    assert result.problem.endswith("a write was cut short; the 3 records before it verify")


def test_an_incomplete_line_in_a_rotated_file(tmp_path: Path) -> None:
    path = rotated_log(tmp_path)
    older = tmp_path / "audit.jsonl.2"
    older.write_bytes(older.read_bytes()[:-5])
    result = verify_log(str(path))
    assert (result.ok, result.file, result.problem) == (
        False,
        str(older),
        "an incomplete line in the middle of the log",
    )


def test_a_line_that_is_not_a_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 1)
    with open(path, "ab") as stream:
        stream.write(b'{"hello": 1}\n')
    result = verify_log(str(path))
    assert (result.ok, result.line) == (False, 3)
    assert result.problem is not None and result.problem.startswith("not a valid audit record (")


def test_the_first_lines_removed(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    path.write_bytes(b"".join(lines(path)[1:]))
    result = verify_log(str(path))
    assert result.problem == "the first record is not a genesis or rotate record: the start is missing"


def test_a_rotated_file_that_does_not_start_with_a_rotate_record(tmp_path: Path) -> None:
    path = rotated_log(tmp_path)
    newest = tmp_path / "audit.jsonl.1"
    content = lines(newest)
    head = records(newest)[0]
    # Move the rotate record to the end of the older file: the chain stays intact.
    older = tmp_path / "audit.jsonl.2"
    older.write_bytes(older.read_bytes() + content[0])
    newest.write_bytes(b"".join(content[1:]))
    result = verify_log(str(path))
    assert (result.ok, result.file, result.line) == (False, str(newest), 1)
    assert result.problem == f"{newest} does not start with a rotate record"
    assert head.method == "rotate"


def test_a_second_genesis_is_named_as_a_new_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 1)
    restart = seal(AuditEntry(event="lifecycle", method="genesis"), seq=2, prev_hash="f" * 64, now=T0)
    with open(path, "ab") as stream:
        stream.write(encode_line(restart))
    result = verify_log(str(path))
    assert result.problem == "prev_hash does not match the previous record: a new chain was started here"


def test_a_gap_in_seq_with_intact_hashes(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    writer = ChainWriter(str(path), max_bytes=1 << 20, keep=2, clock=Clock())
    writer.open()
    writer.seq += 5  # a writer bug, not tampering: the hashes are all right
    writer.append([call(1)])
    writer.close(sync=False)
    result = verify_log(str(path))
    assert (result.problem, result.expected, result.found) == (
        "seq does not follow the previous record",
        "1",
        "6",
    )


def test_no_log_at_all(tmp_path: Path) -> None:
    result = verify_log(str(tmp_path / "nope.jsonl"))
    assert result.problem == f"no audit log at {tmp_path / 'nope.jsonl'}"
    assert verify_log(str(tmp_path / "missing-dir" / "x.jsonl")).ok is False


def test_an_empty_log(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"")
    assert verify_log(str(path)).problem == f"the audit log at {path} holds no records"
