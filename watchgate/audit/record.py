"""What one audit record is, and how it is sealed into the hash chain.

The chain is only useful if anyone can recompute it from the file alone, years later, with
nothing but the record. So the bytes that are hashed are defined by the record itself: the
canonical JSON of the record without its ``hash`` field, produced by one msgspec encoder with
``order="deterministic"`` (struct fields in declaration order, mapping keys sorted) and
``omit_defaults`` (absent fields are simply not there). A record read back from the file and
re-encoded gives exactly those bytes, which is what ``watchgate audit verify`` relies on.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args

import msgspec

__all__ = [
    "GENESIS",
    "RECOVERED",
    "RESUME",
    "ROTATE",
    "AuditEntry",
    "AuditRecord",
    "AuditStatus",
    "Decision",
    "Event",
    "call_entry",
    "canonical_bytes",
    "compute_hash",
    "decode_record",
    "encode_line",
    "format_time",
    "normalize",
    "recorded_payload",
    "seal",
    "seal_line",
]

_log = logging.getLogger("watchgate.audit")

#: ``call``: a request and its response sealed as one record (its answer came before the
#: request's record was written: see ``AuditActor``); its ``request_payload`` holds the
#: request's arguments, its ``payload`` the answer's
Event = Literal["request", "response", "call", "notification", "decision", "lifecycle", "approval"]
Decision = Literal["allow", "deny", "modify", "error"]

# Lifecycle records the audit writer emits itself; ``method`` carries the lifecycle kind.
GENESIS = "genesis"
ROTATE = "rotate"
RESUME = "resume"
RECOVERED = "recovered"


class AuditEntry(msgspec.Struct, kw_only=True, frozen=True):
    """What a caller knows about one event; the writer adds ``time``, ``seq`` and the hashes.

    ``at`` (seconds since the epoch) is normally left out: the writer stamps the record when it
    seals it, so times in the file never go backwards. Give it to record when something happened
    rather than when it was logged.
    """

    event: Event
    client: str | None = None
    principal: str | None = None  # who the client is (a token's name, a uid's user); never a token
    groups: tuple[str, ...] | None = None
    server: str | None = None
    method: str | None = None
    tool: str | None = None
    public_name: str | None = None
    request_id: int | str | None = None
    decision: Decision | None = None
    plugin: str | None = None
    reason: str | None = None
    duration_ms: float | None = None
    request_bytes: int | None = None
    response_bytes: int | None = None
    error_code: int | None = None
    payload: Any = None
    request_payload: Any = None  # a ``call``'s: the request's params (``payload`` is the answer's)
    at: float | None = None


class AuditRecord(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """One line of the JSON Lines log. Field order here is the order on disk and in the hash.

    Between ``seq`` and ``prev_hash`` the fields are an `AuditEntry`'s, in its order (checked at
    import): the writer builds a record positionally from an entry's fields, several times
    cheaper than by keyword. ``prev_hash`` has a default only so that it may follow them; every
    record has one (a chain's first record's is random), so its absence fails ``verify``."""

    time: str
    seq: int
    event: Event
    client: str | None = None
    principal: str | None = None
    groups: tuple[str, ...] | None = None
    server: str | None = None
    method: str | None = None
    tool: str | None = None
    public_name: str | None = None
    request_id: int | str | None = None
    decision: Decision | None = None
    plugin: str | None = None
    reason: str | None = None
    duration_ms: float | None = None
    request_bytes: int | None = None
    response_bytes: int | None = None
    error_code: int | None = None
    payload: Any = None
    request_payload: Any = None
    prev_hash: str = ""
    hash: str = ""


#: An entry's fields, ``at`` aside, are a record's between ``seq`` and ``prev_hash``, in order.
_ENTRY_FIELDS: Final = AuditEntry.__struct_fields__[:-1]
if AuditEntry.__struct_fields__[-1] != "at" or AuditRecord.__struct_fields__[2:-2] != _ENTRY_FIELDS:
    raise TypeError("AuditEntry's fields must be AuditRecord's between seq and prev_hash, in order, then at")
#: AuditRecord by position (time, seq, an entry's fields, prev_hash): a checker cannot count
#: an unpacked tuple's fields, the check above does
_by_position: Final[Callable[..., AuditRecord]] = AuditRecord
_DURATION: Final = _ENTRY_FIELDS.index("duration_ms")
_PAYLOAD: Final = _ENTRY_FIELDS.index("payload")
_REQUEST_PAYLOAD: Final = _ENTRY_FIELDS.index("request_payload")


def _fallback(obj: Any) -> Any:
    """Anything the encoder does not know (a Path, an exception, bytes) is logged as its repr."""
    return repr(obj)


_ENCODER = msgspec.json.Encoder(order="deterministic", enc_hook=_fallback)
_PLAIN_ENCODER = msgspec.json.Encoder(enc_hook=_fallback)  # takes any key type, unlike _ENCODER
_RECORD_DECODER = msgspec.json.Decoder(AuditRecord)
_ANY_DECODER = msgspec.json.Decoder()


_second: tuple[int, str] = (-1, "")  # the last whole second formatted: strftime is slow per record
_last: tuple[float, str] = (math.nan, "")  # the last time formatted: a batch's records share one


def format_time(at: float) -> str:
    """RFC 3339, UTC, always with microseconds, so records sort and compare as text."""
    global _second, _last
    if at == _last[0]:
        return _last[1]
    whole, micros = divmod(round(at * 1_000_000), 1_000_000)
    if _second[0] != whole:
        _second = (whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    text = f"{_second[1]}.{micros:06d}Z"
    _last = (at, text)
    return text


def normalize(value: Any) -> Any:
    """Plain JSON values (dict, list, str, int, float, bool, None) that survive a round trip.

    Payloads arrive as ``msgspec.Raw`` slices, tuples or structs; hashing those as given would
    hash bytes that a reader of the file can never reproduce.
    """
    try:
        return _ANY_DECODER.decode(_PLAIN_ENCODER.encode(value))
    except (RuntimeError, TypeError, ValueError):  # a cycle (RecursionError), a repr that raises
        return f"<payload not representable as JSON: {type(value).__name__}>"


def canonical_bytes(record: AuditRecord) -> bytes:
    """The bytes the hash covers: the record's canonical JSON without ``hash``."""
    return _ENCODER.encode(msgspec.structs.replace(record, hash=""))


def compute_hash(record: AuditRecord) -> str:
    return hashlib.sha256(canonical_bytes(record)).hexdigest()


def encode_line(record: AuditRecord) -> bytes:
    """The record as one line of the log, newline included."""
    return _ENCODER.encode(record) + b"\n"


def decode_record(line: bytes) -> AuditRecord:
    """Parse one line (without its newline); raises ``msgspec.DecodeError`` if it is not a record."""
    try:
        return _RECORD_DECODER.decode(line)
    except RecursionError:  # a tampered line nested too deeply: not a record either
        raise msgspec.DecodeError("JSON nested too deeply") from None


def seal(entry: AuditEntry, *, seq: int, prev_hash: str, now: float) -> AuditRecord:
    """Turn an entry into the next record of the chain (see `seal_line`)."""
    return seal_line(entry, seq=seq, prev_hash=prev_hash, now=now)[0]


def seal_line(entry: AuditEntry, *, seq: int, prev_hash: str, now: float) -> tuple[AuditRecord, bytes]:
    """Turn an entry into the next record of the chain, and that record's line in the log.

    Valid by construction, encoded once: the record is built from the entry's fields in order,
    each in the form a reader decodes (a duration as a finite float, a payload as plain JSON:
    only those are ever converted), after one cheap check that every field has its type. Its
    canonical JSON is encoded once, hashed, and written with the hash appended; nothing is
    decoded to check it (that a reader re-encodes exactly these bytes is
    ``tests/audit/test_seal_properties.py``'s to prove, for any entry, right or wrong). An entry
    with a field of the wrong type (a caller's mistake) is kept as an ``error`` record that
    names the field, rather than dropped or written unreadable. ``now`` is the time when
    ``entry.at`` is None.
    """
    time = format_time(now if entry.at is None else entry.at)
    misfit = _misfit(entry)
    if misfit is None:
        fields = msgspec.structs.astuple(entry)[:-1]  # ``at`` is ``time`` now
        duration, payload, asked = entry.duration_ms, entry.payload, entry.request_payload
        if not (duration is None or (type(duration) is float and math.isfinite(duration))) or not (
            payload is None and asked is None
        ):
            fields = _readable(fields, duration, payload, asked)
        record = _by_position(time, seq, *fields, prev_hash)
    else:
        record = AuditRecord(
            time=time,
            seq=seq,
            event="lifecycle",
            method="invalid_entry",
            decision="error",
            reason=f"an audit entry could not be recorded as given ({misfit}); event {entry.event!r}",
            prev_hash=prev_hash,
        )
    # The hash covers the record's canonical JSON without ``hash`` (an empty hash is left out),
    # and ``hash`` is the last field: the line is that same JSON with the hash added at the end.
    canonical = _ENCODER.encode(record)
    digest = hashlib.sha256(canonical).hexdigest()
    line = b"".join((canonical[:-1], b',"hash":"', digest.encode(), b'"}\n'))
    return msgspec.structs.replace(record, hash=digest), line


def _readable(fields: tuple[Any, ...], duration: Any, payload: Any, asked: Any) -> tuple[Any, ...]:
    """``fields`` with each value a reader decodes as it is: a duration as a finite float (JSON
    has no NaN: a reader would find it absent), payloads as plain JSON."""
    readable = list(fields)
    if duration is not None:
        readable[_DURATION] = float(duration) if math.isfinite(duration) else None
    readable[_PAYLOAD] = None if payload is None else normalize(payload)
    readable[_REQUEST_PAYLOAD] = None if asked is None else normalize(asked)
    return tuple(readable)


_EVENTS: Final = frozenset(get_args(Event))
_DECISIONS: Final = frozenset(get_args(Decision))
_TEXT: Final = ("client", "principal", "server", "method", "tool", "public_name", "plugin", "reason")
_COUNTS: Final = ("request_bytes", "response_bytes", "error_code")


def _misfit(e: AuditEntry) -> str | None:
    """None if every field of ``e`` has the type a reader decodes it as; else which does not.

    One expression for the common case (a few hundred nanoseconds, less than decoding the
    record would cost); the field is looked for only when something is wrong."""
    if (
        (e.client is None or type(e.client) is str)
        and (e.principal is None or type(e.principal) is str)
        and (e.server is None or type(e.server) is str)
        and (e.method is None or type(e.method) is str)
        and (e.tool is None or type(e.tool) is str)
        and (e.public_name is None or type(e.public_name) is str)
        and (e.plugin is None or type(e.plugin) is str)
        and (e.reason is None or type(e.reason) is str)
        and (e.request_id is None or type(e.request_id) is int or type(e.request_id) is str)
        and (e.request_bytes is None or type(e.request_bytes) is int)
        and (e.response_bytes is None or type(e.response_bytes) is int)
        and (e.error_code is None or type(e.error_code) is int)
        and (e.duration_ms is None or type(e.duration_ms) is float or type(e.duration_ms) is int)
        and (e.decision is None or (type(e.decision) is str and e.decision in _DECISIONS))
        and (type(e.event) is str and e.event in _EVENTS)
        and (e.groups is None or (type(e.groups) is tuple and all(type(g) is str for g in e.groups)))
    ):
        return None
    return _which_misfits(e)


def _which_misfits(e: AuditEntry) -> str:
    for name in _TEXT:
        value = getattr(e, name)
        if value is not None and type(value) is not str:
            return f"{name}: expected str, got {type(value).__name__}"
    for name in _COUNTS:
        value = getattr(e, name)
        if value is not None and type(value) is not int:
            return f"{name}: expected int, got {type(value).__name__}"
    if e.request_id is not None and type(e.request_id) not in (int, str):
        return f"request_id: expected int or str, got {type(e.request_id).__name__}"
    if e.duration_ms is not None and type(e.duration_ms) not in (int, float):
        return f"duration_ms: expected a number, got {type(e.duration_ms).__name__}"
    if e.decision is not None and not (type(e.decision) is str and e.decision in _DECISIONS):
        return f"decision: expected one of {sorted(_DECISIONS)}, got {e.decision!r}"
    if not (type(e.event) is str and e.event in _EVENTS):
        return f"event: expected one of {sorted(_EVENTS)}"
    return "groups: expected a tuple of str"


class AuditStatus(msgspec.Struct, kw_only=True, frozen=True):
    """What ``watchgate ps`` shows about the audit log."""

    enabled: bool
    path: str
    healthy: bool
    last_error: str | None
    records_written: int
    records_lost: int
    pending: int
    mailbox_depth: int
    sink_errors: int


def recorded_payload(
    entry: AuditEntry, include_payloads: bool, redact: Callable[[Any], Any] | None
) -> AuditEntry:
    """The entry as it is recorded: without its payloads unless payloads are wanted, else with
    them redacted (again: defence in depth). A redact hook that fails leaves the payloads out
    and says so, naming only the exception's type (its message could quote the secret)."""
    if entry.payload is None and entry.request_payload is None:
        return entry
    if not include_payloads:
        return msgspec.structs.replace(entry, payload=None, request_payload=None)
    if redact is None:
        return entry
    try:
        return msgspec.structs.replace(
            entry,
            payload=None if entry.payload is None else redact(normalize(entry.payload)),
            request_payload=None
            if entry.request_payload is None
            else redact(normalize(entry.request_payload)),
        )
    except Exception as exc:  # user code: its failure must not lose the record, nor leak the payload
        failure = type(exc).__name__
    _log.error("audit: the redact hook failed (%s); the payload is left out", failure)
    note = f"payload withheld: redaction failed ({failure})"
    reason = f"{entry.reason}; {note}" if entry.reason else note
    return msgspec.structs.replace(entry, payload=None, request_payload=None, reason=reason)


def call_entry(request: AuditEntry, response: AuditEntry) -> AuditEntry:
    """A request's entry and its response's as one ``call`` entry: the response's fields (its
    time, verdict, duration and sizes, its payload), the request's payload (and size, if the
    response's entry does not say it)."""
    size = request.request_bytes if response.request_bytes is None else response.request_bytes
    return msgspec.structs.replace(
        response, event="call", request_payload=request.payload, request_bytes=size
    )
