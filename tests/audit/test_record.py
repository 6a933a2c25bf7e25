"""Records: canonical bytes, the hash, and what sealing normalises."""

from __future__ import annotations

import hashlib

import msgspec
import pytest

from watchgate.audit.record import (
    AuditEntry,
    AuditRecord,
    canonical_bytes,
    compute_hash,
    decode_record,
    encode_line,
    format_time,
    normalize,
    seal,
    seal_line,
)

from .helpers import T0, call


def test_time_is_rfc3339_utc_with_microseconds() -> None:
    assert format_time(T0) == "2026-05-28T20:26:40.000000Z"
    assert format_time(T0 + 0.000123) == "2026-05-28T20:26:40.000123Z"


def test_hash_is_sha256_of_the_canonical_json_without_the_hash_field() -> None:
    record = seal(call(1), seq=5, prev_hash="ab" * 32, now=T0)
    canonical = canonical_bytes(record)
    assert b'"hash"' not in canonical
    assert canonical.startswith(b'{"time":"2026-05-28T20:26:40.000000Z","seq":5,"event":"request"')
    assert record.hash == hashlib.sha256(canonical).hexdigest() == compute_hash(record)
    assert encode_line(record) == canonical[:-1] + f',"hash":"{record.hash}"}}\n'.encode()


def test_a_line_read_back_hashes_to_the_same_value() -> None:
    entry = call(1, payload={"z": [1, {"b": 2, "a": 1}], "a": "é"}, duration_ms=3, plugin=None)
    record = seal(entry, seq=0, prev_hash="0" * 64, now=T0)
    back = decode_record(encode_line(record)[:-1])
    assert back == record
    assert compute_hash(back) == record.hash


def test_absent_fields_are_not_written() -> None:
    record = seal(AuditEntry(event="lifecycle", method="genesis"), seq=0, prev_hash="x", now=T0)
    assert msgspec.json.decode(encode_line(record)).keys() == {
        "time",
        "seq",
        "event",
        "method",
        "prev_hash",
        "hash",
    }


def test_sealing_normalises_what_a_reader_would_decode() -> None:
    raw = msgspec.Raw(b'{ "b" : 1,  "a" : [1, 2] }')
    entry = call(1, duration_ms=7, payload={"args": raw, "t": (1, 2), 3: "int key"})
    record = seal(entry, seq=0, prev_hash="x", now=T0)
    assert record.duration_ms == 7.0 and isinstance(record.duration_ms, float)
    assert record.payload == {"args": {"a": [1, 2], "b": 1}, "t": [1, 2], "3": "int key"}
    assert compute_hash(decode_record(encode_line(record)[:-1])) == record.hash


def test_not_a_number_duration_becomes_absent() -> None:
    record = seal(call(1, duration_ms=float("nan")), seq=0, prev_hash="x", now=T0)
    assert record.duration_ms is None


def test_entry_time_wins_over_the_sealing_time() -> None:
    record = seal(call(1, at=T0 - 60), seq=0, prev_hash="x", now=T0)
    assert record.time == format_time(T0 - 60)


class _Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_payload_json_cannot_express_is_kept_as_text() -> None:
    assert normalize({(1, 2): "tuple key"}) == {"(1, 2)": "tuple key"}
    assert normalize({"path": b"\x00"}) == {"path": "AA=="}
    assert normalize({"obj": ValueError("x")}) == {"obj": "ValueError('x')"}
    cycle: list[object] = []
    cycle.append(cycle)
    assert normalize(cycle) == "<payload not representable as JSON: list>"
    assert normalize({"x": _Unprintable()}) == "<payload not representable as JSON: dict>"


def test_an_entry_with_a_wrong_type_is_recorded_as_an_error_not_dropped() -> None:
    entry = call(1, request_id=1.5)  # JSON-RPC ids are int or str
    record = seal(entry, seq=3, prev_hash="p", now=T0)
    assert (record.event, record.method, record.decision, record.seq) == (
        "lifecycle",
        "invalid_entry",
        "error",
        3,
    )
    assert record.reason is not None and "request_id" in record.reason and "'request'" in record.reason
    assert record.hash == compute_hash(record)


@pytest.mark.parametrize(
    "line", [b"{}", b"not json", b'{"time":"t","seq":0,"event":"request","prev_hash":"x","extra":1}']
)
def test_decode_rejects_what_is_not_a_record(line: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_record(line)


def test_record_field_order_is_the_documented_one() -> None:
    names = [f.name for f in msgspec.structs.fields(AuditRecord)]
    assert names[:3] == ["time", "seq", "event"]
    assert names[-2:] == ["prev_hash", "hash"]


@pytest.mark.parametrize(
    "entry",
    [
        AuditEntry(event="request", client="c1", server="fs", method="tools/call", tool="read", request_id=7),
        AuditEntry(event="response", duration_ms=2, request_bytes=10, response_bytes=0, decision="allow"),
        AuditEntry(event="notification", payload={"b": [1, 2.5, None], "a": "ü"}, reason="x"),
        AuditEntry(event="decision", request_id="r-1", plugin="secrets", decision="deny"),
    ],
)
def test_the_sealed_line_is_the_record_encoded_and_its_hash_checks(entry: AuditEntry) -> None:
    record, line = seal_line(entry, seq=3, prev_hash="ab" * 32, now=1_700_000_000.25)
    assert line == encode_line(record)
    assert record.hash == compute_hash(record) and record == seal(
        entry, seq=3, prev_hash="ab" * 32, now=1_700_000_000.25
    )
