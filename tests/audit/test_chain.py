"""The chain writer: headers, rotation, and keeping the file whole when writes fail."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import watchgate.audit.chain as chain_module
from watchgate.audit.chain import ChainWriter, _read_tail
from watchgate.audit.record import GENESIS, RESUME, ROTATE, compute_hash
from watchgate.audit.verify import verify_log

from .helpers import Clock, call, lines, records, write_log


def writer_for(path: Path, **kwargs: int) -> ChainWriter:
    return ChainWriter(
        str(path), max_bytes=kwargs.get("max_bytes", 1 << 20), keep=kwargs.get("keep", 3), clock=Clock()
    )


def test_a_new_log_starts_with_a_genesis_record_with_a_random_prev_hash(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "audit.jsonl"
    header = writer_for(path).open()
    assert (header.event, header.method, header.seq) == ("lifecycle", GENESIS, 0)
    assert len(header.prev_hash) == 64 and int(header.prev_hash, 16) >= 0
    assert header.prev_hash != writer_for(tmp_path / "other.jsonl").open().prev_hash
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert records(path) == [header]


def test_opening_twice_closes_the_first_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.jsonl"
    writer = writer_for(path)
    writer.open()
    first = writer._fd
    closed: list[int] = []
    real_close = os.close
    monkeypatch.setattr(os, "close", lambda fd: closed.append(fd) or real_close(fd))
    assert writer.open().method == RESUME
    assert closed == [first]
    writer.close(sync=False)


def test_records_chain_and_count_up(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    writer = writer_for(path)
    header = writer.open()
    result = writer.append([call(1), call(2)])
    assert result.error is None and result.records == result.sealed
    first, second = result.sealed
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == header.hash and second.prev_hash == first.hash
    assert writer.seq == 3 and writer.last_hash == second.hash
    assert all(r.hash == compute_hash(r) for r in records(path))


def test_reopening_resumes_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    before = write_log(path, 2)
    writer = writer_for(path)
    header = writer.open()
    assert (header.method, header.seq, header.prev_hash) == (RESUME, 3, before.last_hash)
    assert header.reason == "the audit writer reopened audit.jsonl; the chain continues"
    assert verify_log(str(path)).ok


def test_an_incomplete_last_line_is_cut_off_and_noted(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    before = write_log(path, 2)
    with open(path, "ab") as stream:
        stream.write(b'{"time":"2026-')
    header = writer_for(path).open()
    assert header.method == RESUME and header.prev_hash == before.last_hash
    assert (
        header.reason is not None
        and "discarded an incomplete last line of 14 bytes (sha256 " in header.reason
    )
    assert verify_log(str(path)).ok


def test_a_file_holding_only_a_partial_line_starts_a_new_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"time"')
    header = writer_for(path).open()
    assert header.method == GENESIS
    assert header.reason is not None and "discarded an incomplete last line of 7 bytes" in header.reason
    assert len(lines(path)) == 1


def test_an_unreadable_last_record_starts_a_new_chain_that_verify_reports(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 1)
    with open(path, "ab") as stream:
        stream.write(b"garbage\n")
    header = writer_for(path).open()
    assert header.method == GENESIS
    assert header.reason is not None and "the last record of audit.jsonl could not be read" in header.reason
    result = verify_log(str(path))
    assert not result.ok and result.line == 3


def test_a_batch_shares_one_time_and_times_never_go_back_across_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    writer = writer_for(path, max_bytes=2000, keep=2)
    writer.open()
    one = writer.append([call(1), call(2), call(3)]).sealed
    assert len({r.time for r in one}) == 1  # sealed and written together: one reading of the clock
    result = writer.append([call(i) for i in range(4, 40)])
    assert [r.method for r in result.records].count(ROTATE) >= 1
    times = [r.time for r in result.records]
    assert times == sorted(times) and times[0] > one[0].time


def test_rotation_keeps_the_chain_and_the_newest_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    writer = writer_for(path, max_bytes=1000, keep=2)
    writer.open()
    result = writer.append([call(i) for i in range(30)])
    assert result.error is None and len(result.sealed) == 30
    rotates = [r for r in result.records if r.method == ROTATE]
    assert rotates and len(result.records) == 30 + len(rotates)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    for file in (path, tmp_path / "audit.jsonl.1"):
        first = records(file)[0]
        assert first.method == ROTATE
        assert first.reason == f"continues from audit.jsonl.1, which ends at seq {first.seq - 1}"
        assert file.stat().st_size <= 1000
    current = records(path)
    assert current[-1].seq == 30 + len(rotates)
    verified = verify_log(str(path))
    assert verified.ok and verified.starts_at_rotation


def test_rotation_removes_files_beyond_keep(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    for n in (1, 2, 3, 7):
        (tmp_path / f"audit.jsonl.{n}").write_text("old\n")
    writer = writer_for(path, max_bytes=600, keep=2)
    writer.open()
    assert writer.append([call(i) for i in range(4)]).error is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]


def test_a_record_larger_than_max_bytes_gets_a_file_of_its_own_without_looping(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    writer = writer_for(path, max_bytes=200, keep=5)
    writer.open()
    result = writer.append([call(1, payload="x" * 500), call(2, payload="y" * 500)])
    assert result.error is None
    assert [len(records(f)) for f in (tmp_path / "audit.jsonl.1", path)] == [2, 2]
    assert verify_log(str(path)).ok


def test_after_a_crash_between_rotation_and_the_new_file_the_next_open_continues(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    before = write_log(path, 2)
    path.rename(tmp_path / "audit.jsonl.1")
    header = writer_for(path).open()
    assert (header.method, header.prev_hash, header.seq) == (ROTATE, before.last_hash, 3)
    assert header.reason == "continues from audit.jsonl.1, which ends at seq 2"
    assert verify_log(str(path)).ok


def test_an_unreadable_previous_file_starts_a_new_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    (tmp_path / "audit.jsonl.1").write_bytes(b"junk\n")
    header = writer_for(path).open()
    assert header.method == GENESIS
    assert header.reason is not None and "audit.jsonl.1 could not be read" in header.reason


def test_an_empty_previous_file_starts_a_new_chain(tmp_path: Path) -> None:
    (tmp_path / "audit.jsonl.1").write_bytes(b"")
    assert writer_for(tmp_path / "audit.jsonl").open().method == GENESIS


def test_a_failed_write_is_cut_back_and_reported_with_what_was_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    writer = writer_for(path, max_bytes=700)
    writer.open()
    real = chain_module._write_all
    calls = 0

    def half_then_full(fd: int, data: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            real(fd, data)
            return
        real(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(chain_module, "_write_all", half_then_full)
    result = writer.append([call(i) for i in range(6)])  # fills the file, rotates, then fails
    assert isinstance(result.error, OSError) and result.error.errno == errno.ENOSPC
    assert 0 < len(result.sealed) < 6
    assert not writer.is_open
    assert writer.seq == result.sealed[-1].seq + 1
    monkeypatch.setattr(chain_module, "_write_all", real)
    assert path.stat().st_size == 0  # the half-written rotate record was cut off again
    assert records(tmp_path / "audit.jsonl.1")[-1] == result.sealed[-1]
    assert writer.append([call(9)]).error is not None  # closed until reopened
    assert writer.open().method == ROTATE
    assert writer.append([call(9)]).error is None
    assert verify_log(str(path)).ok


def test_when_cutting_back_fails_too_the_next_open_repairs_the_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.jsonl"
    writer = writer_for(path)
    writer.open()
    real = chain_module._write_all

    def partial(fd: int, data: bytes) -> None:
        real(fd, data[:10])
        raise OSError(errno.EIO, "I/O error")

    def no_truncate(fd: int, size: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(chain_module, "_write_all", partial)
    monkeypatch.setattr(os, "ftruncate", no_truncate)
    assert writer.append([call(1)]).error is not None
    assert "cannot cut" in caplog.text
    monkeypatch.undo()
    header = writer.open()
    assert header.reason is not None and "discarded an incomplete last line of 10 bytes" in header.reason
    assert verify_log(str(path)).ok


def test_a_failed_rotation_is_retried_by_the_next_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    writer = writer_for(path, max_bytes=500)
    writer.open()
    real = os.replace

    def fail(src: str, dst: str) -> None:
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", fail)
    result = writer.append([call(i) for i in range(5)])
    assert result.error is not None and not writer.is_open
    monkeypatch.setattr(os, "replace", real)
    writer.open()
    assert writer.append([call(9)]).error is None
    assert (tmp_path / "audit.jsonl.1").exists()
    assert verify_log(str(path)).ok


def test_fsync_failure_abandons_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = writer_for(tmp_path / "audit.jsonl")
    writer.open()

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="I/O error"):
        writer.fsync()
    assert not writer.is_open
    writer.fsync()  # nothing open: nothing to do
    result = writer.append([call(1)], sync=True)
    assert result.error is not None


def test_sync_append_fsyncs_and_a_failure_there_is_returned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = writer_for(tmp_path / "audit.jsonl")
    writer.open()
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    assert writer.append([call(1)], sync=True).error is None
    assert len(synced) == 1

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "fsync", broken)
    result = writer.append([call(2)], sync=True)
    assert result.error is not None and len(result.sealed) == 1  # in the file, only not synced


def test_close_logs_sync_and_close_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    writer = writer_for(tmp_path / "audit.jsonl")
    writer.open()
    real_close = os.close

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "fsync", broken)
    monkeypatch.setattr(os, "close", broken)
    fd = writer._fd
    writer.close(sync=True)
    assert "fsync of" in caplog.text and "closing" in caplog.text
    assert not writer.is_open
    writer.close(sync=True)  # second close: nothing to do
    assert fd is not None
    real_close(fd)


def test_open_failure_leaves_the_writer_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.jsonl"
    writer = writer_for(path)

    def broken(fd: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(chain_module, "_write_all", broken)
    with pytest.raises(OSError, match="No space"):
        writer.open()
    assert not writer.is_open


def test_rotation_without_sync_does_not_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    writer = ChainWriter(
        str(tmp_path / "audit.jsonl"), max_bytes=500, keep=2, sync_on_rotate=False, clock=Clock()
    )
    writer.open()
    assert writer.append([call(i) for i in range(6)]).error is None
    assert (tmp_path / "audit.jsonl.1").exists() and synced == []


def test_reading_the_tail_crosses_block_boundaries(tmp_path: Path) -> None:
    path = tmp_path / "big"
    long_line = b"x" * 100_000
    path.write_bytes(b"a\n" + long_line + b"\n" + b"par")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert _read_tail(fd, path.stat().st_size) == (long_line, b"par")
        assert _read_tail(fd, 2) == (b"a", b"")
        assert _read_tail(fd, 0) == (None, b"")
    finally:
        os.close(fd)
    only = tmp_path / "only"
    only.write_bytes(b"y" * 70_000 + b"\n")
    fd = os.open(only, os.O_RDONLY)
    try:
        assert _read_tail(fd, 70_001) == (b"y" * 70_000, b"")
    finally:
        os.close(fd)
