"""Extra outputs fed from the same sealed records as the JSON Lines file: CSV, CEF, syslog.

The JSON Lines file is the evidence; sinks are copies in the formats other tools read (a
spreadsheet, a SIEM). So a sink runs after the record is in the log, and a sink that fails
is logged and skipped, never allowed to hold up or break the chain. A slow sink does slow the
audit actor, and through its bounded mailbox the gateway: that is backpressure, not loss.
"""

from __future__ import annotations

import abc
import csv
import io
import logging
import os
import socket
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

import msgspec
import trio

from watchgate import __version__
from watchgate.audit.record import AuditRecord, encode_line
from watchgate.config.schema import AuditSinkConfig

__all__ = [
    "CSV_COLUMNS",
    "CefSink",
    "CsvSink",
    "Sink",
    "SinkFan",
    "SyslogSink",
    "build_sinks",
    "cef_line",
    "csv_row",
    "run_blocking",
    "syslog_message",
]

log = logging.getLogger("watchgate.audit")
T = TypeVar("T")

CSV_COLUMNS: tuple[str, ...] = tuple(f.encode_name for f in msgspec.structs.fields(AuditRecord))
_TEXT_FIELDS = {"client", "server", "method", "tool", "public_name", "request_id", "plugin", "reason"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_SEVERITY = {"deny": 7, "error": 6, "modify": 5}
_SYSLOG_SEVERITY = {"deny": 4, "error": 3, "modify": 5}  # warning, err, notice; else info (6)
_LOG_AUDIT_FACILITY = 13
SOCKET_TIMEOUT = 1.0
_SD_ID = "watchgate@32473"  # 32473 is the enterprise number RFC 5612 reserves for examples
_SD_FIELDS = (
    "event",
    "seq",
    "client",
    "server",
    "method",
    "tool",
    "public_name",
    "request_id",
    "decision",
    "plugin",
    "hash",
)


async def run_blocking(fn: Callable[[], T], *, threaded: bool) -> T:
    """Run blocking file I/O in a worker thread, so a slow disk never stalls the event loop.

    ``threaded=False`` runs it inline: tests use that to keep time fully deterministic.
    """
    if threaded:
        return await trio.to_thread.run_sync(fn)
    return fn()


def _epoch_ms(record: AuditRecord) -> int:
    return int(datetime.fromisoformat(record.time).timestamp() * 1000)


def csv_row(record: AuditRecord) -> list[str]:
    """One CSV row; text a spreadsheet would run as a formula is prefixed with ``'``."""
    row = []
    for name in CSV_COLUMNS:
        value = getattr(record, name)
        if value is None:
            text = ""
        elif name in ("payload", "request_payload"):
            text = msgspec.json.encode(value).decode()
        else:
            text = str(value)
        if name in _TEXT_FIELDS and text.startswith(_FORMULA_START):
            text = "'" + text
        row.append(text)
    return row


def _cef_header(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _cef_value(value: object) -> str:
    text = str(value).replace("\\", "\\\\").replace("=", "\\=")
    return text.replace("\r", "\\r").replace("\n", "\\n")


def cef_line(record: AuditRecord) -> str:
    """ArcSight Common Event Format; the payload is left out (it belongs in the JSON log)."""
    decision = record.decision or ""
    name = " ".join(p for p in (decision, record.method, record.public_name or record.tool) if p)
    header = [
        "CEF:0",
        "Watchgate",
        "Watchgate",
        __version__,
        record.event,
        name or record.event,
        str(_SEVERITY.get(decision, 3)),
    ]
    pairs: list[tuple[str, object]] = [("rt", _epoch_ms(record)), ("externalId", record.seq)]
    optional: list[tuple[str, object | None]] = [
        ("suser", record.client),
        ("destinationServiceName", record.server),
        ("requestMethod", record.method),
        ("act", record.decision),
        ("msg", record.reason),
        ("in", record.request_bytes),
        ("out", record.response_bytes),
    ]
    labelled: list[tuple[str, str, object | None]] = [
        ("cs1", "tool", record.tool),
        ("cs2", "publicName", record.public_name),
        ("cs3", "plugin", record.plugin),
        ("cs4", "requestId", record.request_id),
        ("cs5", "hash", record.hash),
        ("cs6", "prevHash", record.prev_hash),
        ("cfp1", "durationMs", record.duration_ms),
        ("cn1", "errorCode", record.error_code),
    ]
    pairs += [(key, value) for key, value in optional if value is not None]
    for key, label, value in labelled:
        if value is not None:
            pairs += [(f"{key}Label", label), (key, value)]
    extension = " ".join(f"{key}={_cef_value(value)}" for key, value in pairs)
    return "|".join(_cef_header(part) for part in header) + "|" + extension


def _sd_value(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _hostname() -> str:
    name = "".join(c for c in socket.gethostname() if 33 <= ord(c) <= 126)[:255]
    return name or "-"


def syslog_message(record: AuditRecord, *, hostname: str, pid: int) -> bytes:
    """RFC 5424: facility "log audit", key fields as structured data, the JSON record as MSG.

    MSG is ASCII unless the record holds other characters; then it is UTF-8 with the BOM the
    RFC asks for.
    """
    severity = _SYSLOG_SEVERITY.get(record.decision or "", 6)
    params = " ".join(
        f'{name}="{_sd_value(getattr(record, name))}"'
        for name in _SD_FIELDS
        if getattr(record, name) is not None
    )
    head = f"<{_LOG_AUDIT_FACILITY * 8 + severity}>1 {record.time} {hostname} watchgate {pid}"
    body = encode_line(record)[:-1]
    if not body.isascii():
        body = b"\xef\xbb\xbf" + body
    return f"{head} {record.event} [{_SD_ID} {params}] ".encode() + body


class Sink(abc.ABC):
    """One extra output. ``emit`` gets every record in log order, rotation headers included."""

    def __init__(self, name: str) -> None:
        self.name = name

    @abc.abstractmethod
    async def emit(self, records: Sequence[AuditRecord]) -> None:
        """Deliver records; an exception is logged by the audit actor and the sink is skipped."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the sink holds open; called when the audit actor stops."""


class _FileSink(Sink):
    """Appends one line per record, opening the file per batch so logrotate can move it freely."""

    header: bytes = b""

    def __init__(self, path: str, *, threaded: bool = True) -> None:
        super().__init__(f"{type(self).__name__} {path}")
        self.path = path
        self.threaded = threaded

    @abc.abstractmethod
    def format(self, record: AuditRecord) -> bytes:
        """One record as a line, newline included."""

    async def emit(self, records: Sequence[AuditRecord]) -> None:
        data = b"".join(self.format(record) for record in records)
        await run_blocking(lambda: self._append(data), threaded=self.threaded)

    def close(self) -> None:
        """Nothing to release: the file is opened per batch."""

    def _append(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "ab") as stream:  # 0600 like the log: a copy holds the same secrets
            if self.header and os.fstat(fd).st_size == 0:
                stream.write(self.header)
            stream.write(data)


def _csv_line(row: Sequence[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(row)
    return buffer.getvalue().encode()


class CsvSink(_FileSink):
    """Comma-separated, one header row, every record field as a column (payload as JSON)."""

    header = _csv_line(CSV_COLUMNS)

    def format(self, record: AuditRecord) -> bytes:
        return _csv_line(csv_row(record))


class CefSink(_FileSink):
    def format(self, record: AuditRecord) -> bytes:
        return cef_line(record).encode() + b"\n"


class SyslogSink(_FileSink):
    """RFC 5424 messages to a file (one per line) or as datagrams to a local Unix socket."""

    def __init__(self, path: str | None = None, *, socket_path: str | None = None, threaded: bool = True):
        super().__init__(path or socket_path or "", threaded=threaded)
        self.socket_path = socket_path
        self._socket: socket.socket | None = None
        self._hostname = _hostname()

    def format(self, record: AuditRecord) -> bytes:
        return syslog_message(record, hostname=self._hostname, pid=os.getpid()) + b"\n"

    async def emit(self, records: Sequence[AuditRecord]) -> None:
        if self.socket_path is None:
            await super().emit(records)
            return
        messages = [self.format(record)[:-1] for record in records]
        await run_blocking(lambda: self._send(messages), threaded=self.threaded)

    def _send(self, messages: list[bytes]) -> None:
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.settimeout(SOCKET_TIMEOUT)  # a stuck syslogd must not stall the audit log
                self._socket.connect(self.path)
            for message in messages:
                self._socket.send(message)
        except OSError:
            self.close()  # reconnect on the next batch: syslogd may have been restarted
            raise

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()


def build_sinks(configs: Sequence[AuditSinkConfig], *, threaded: bool = True) -> list[Sink]:
    """The sinks an ``audit.sinks`` list asks for (paths should already be absolute)."""
    sinks: list[Sink] = []
    for config in configs:
        if config.type == "syslog":
            sinks.append(SyslogSink(config.path, socket_path=config.socket, threaded=threaded))
        elif config.type == "csv":
            sinks.append(CsvSink(config.path or "", threaded=threaded))
        else:
            sinks.append(CefSink(config.path or "", threaded=threaded))
    return sinks


class SinkFan:
    """The sinks the audit actor copies every record to. A sink is a copy: its failure is
    counted and logged at the first of a run (a dead syslog would flood the log), never fatal
    to the chain; the log says when it works again."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)
        self.errors = 0
        self._failing: set[Sink] = set()

    def __bool__(self) -> bool:
        return bool(self.sinks)

    async def emit(self, records: list[AuditRecord]) -> None:
        if not records:
            return
        for sink in self.sinks:
            try:
                await sink.emit(records)
            except Exception as exc:  # user-facing outputs: whatever they raise is theirs
                self._failed(sink, exc)
                continue
            if sink in self._failing:
                self._failing.discard(sink)
                log.warning("audit: sink %s works again", sink.name)

    def _failed(self, sink: Sink, exc: Exception) -> None:
        self.errors += 1
        if sink not in self._failing:
            self._failing.add(sink)
            log.error("audit: sink %s failed: %s; its records are skipped until it works", sink.name, exc)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
