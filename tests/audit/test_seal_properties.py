"""The seal, by property (hypothesis): for every entry a caller can build, right or wrong, the
sealed line decodes to the record, re-encodes to the very bytes that were hashed, and a log of
such lines verifies. What makes this hold is how records are built (typed fields, floats as
floats, payloads as plain JSON), not a decode of every record before it is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from watchgate.audit.record import (
    GENESIS,
    AuditEntry,
    _misfit,
    canonical_bytes,
    compute_hash,
    decode_record,
    seal_line,
)
from watchgate.audit.verify import verify_log

_text = st.text(max_size=12)
_maybe_text = st.none() | _text
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
#: what a field may be given: its own type mostly, and now and then a wrong one
_anything = (
    st.none() | st.booleans() | st.integers() | st.floats() | _text | st.lists(st.integers(), max_size=2)
)
_entries = st.builds(
    AuditEntry,
    event=st.sampled_from(["request", "response", "call", "notification", "decision", "lifecycle"]),
    client=_maybe_text,
    principal=_maybe_text,
    groups=st.none() | st.tuples(_text) | st.tuples(_text, _text),
    server=_maybe_text,
    method=_maybe_text,
    tool=_maybe_text,
    public_name=_maybe_text,
    request_id=st.none() | st.integers() | _text | _anything,
    decision=st.none() | st.sampled_from(["allow", "deny", "modify", "error"]) | _anything,
    plugin=_maybe_text,
    reason=_maybe_text,
    duration_ms=st.none() | st.floats() | st.integers(min_value=0, max_value=10**6),
    request_bytes=st.none() | st.integers(min_value=0) | _anything,
    response_bytes=st.none() | st.integers(min_value=0),
    error_code=st.none() | st.integers() | _anything,
    payload=st.none() | _json,
    request_payload=st.none() | _json,
)


@settings(max_examples=400, deadline=None)
@given(entry=_entries)
def test_a_sealed_line_reads_back_as_the_bytes_that_were_hashed(entry: AuditEntry) -> None:
    record, line = seal_line(entry, seq=7, prev_hash="ab" * 32, now=1_700_000_000.5)
    read = decode_record(line[:-1])
    assert read == record
    assert canonical_bytes(read) == canonical_bytes(record)
    assert compute_hash(read) == record.hash
    assert msgspec.json.decode(line)["hash"] == record.hash
    if _misfit(entry) is None:  # a well-typed entry is recorded as given, field for field
        kept = set(AuditEntry.__struct_fields__) - {"at", "duration_ms", "payload", "request_payload"}
        assert {name: getattr(read, name) for name in kept} == {name: getattr(entry, name) for name in kept}


@settings(max_examples=50, deadline=None)
@given(entries=st.lists(_entries, min_size=1, max_size=6))
def test_a_log_of_any_entries_verifies(entries: list[AuditEntry], tmp_path_factory: Any) -> None:
    path: Path = tmp_path_factory.mktemp("seal") / "audit.jsonl"
    prev, lines = "0" * 64, []
    genesis, line = seal_line(AuditEntry(event="lifecycle", method=GENESIS), seq=0, prev_hash=prev, now=1.0)
    lines.append(line)
    prev = genesis.hash
    for seq, entry in enumerate(entries, start=1):
        record, line = seal_line(entry, seq=seq, prev_hash=prev, now=2.0)
        lines.append(line)
        prev = record.hash
    path.write_bytes(b"".join(lines))
    result = verify_log(str(path))
    assert result.ok, result
