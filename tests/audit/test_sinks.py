"""CSV, CEF and RFC 5424 syslog outputs."""

from __future__ import annotations

import csv
import io
import os
import socket
from pathlib import Path

import msgspec
import pytest
import trio

from watchgate import __version__
from watchgate.audit.record import AuditEntry, AuditRecord, encode_line, seal
from watchgate.audit.sinks import (
    CSV_COLUMNS,
    CefSink,
    CsvSink,
    SyslogSink,
    build_sinks,
    cef_line,
    csv_row,
    run_blocking,
    syslog_message,
)
from watchgate.config import AuditSinkConfig

from .helpers import T0

TIME = "2026-05-28T20:26:40.000000Z"


def deny(**changes: object) -> AuditRecord:
    entry = AuditEntry(
        event="decision",
        client="claude-1",
        server="fs",
        method="tools/call",
        tool="read_file",
        public_name="fs__read_file",
        request_id=7,
        decision="deny",
        plugin="secrets",
        reason="argument matches a secret pattern",
        duration_ms=1.5,
        request_bytes=120,
        error_code=-32010,
    )
    return seal(msgspec.structs.replace(entry, **changes), seq=42, prev_hash="a" * 64, now=T0)


def test_csv_row_has_every_field_in_record_order() -> None:
    record = deny(payload={"path": "/x"})
    row = csv_row(record)
    assert CSV_COLUMNS[0] == "time" and CSV_COLUMNS[-1] == "hash" and len(row) == len(CSV_COLUMNS)
    values = dict(zip(CSV_COLUMNS, row, strict=True))
    assert values["time"] == TIME and values["seq"] == "42" and values["decision"] == "deny"
    assert values["response_bytes"] == "" and values["error_code"] == "-32010"
    assert values["payload"] == '{"path":"/x"}' and values["hash"] == record.hash


def test_csv_writes_both_payloads_of_a_call_record_as_json() -> None:
    record = deny(event="call", payload={"text": "no"}, request_payload={"path": "/x"})
    values = dict(zip(CSV_COLUMNS, csv_row(record), strict=True))
    assert (values["event"], values["request_payload"], values["payload"]) == (
        "call",
        '{"path":"/x"}',
        '{"text":"no"}',
    )


def test_csv_neutralises_spreadsheet_formulas_in_text_fields() -> None:
    values = dict(zip(CSV_COLUMNS, csv_row(deny(tool="=HYPERLINK(1)", client="@me")), strict=True))
    assert values["tool"] == "'=HYPERLINK(1)" and values["client"] == "'@me"
    assert values["error_code"] == "-32010"  # numbers are left alone


async def test_csv_sink_writes_the_header_once(tmp_path: Path) -> None:
    path = tmp_path / "audit.csv"
    sink = CsvSink(str(path), threaded=False)
    await sink.emit([deny()])
    await sink.emit([deny(reason='comma, "quote"\nnewline')])
    sink.close()
    assert path.stat().st_mode & 0o777 == 0o600
    rows = list(csv.reader(io.StringIO(path.read_text())))
    assert rows[0] == list(CSV_COLUMNS) and len(rows) == 3
    assert rows[2][CSV_COLUMNS.index("reason")] == 'comma, "quote"\nnewline'


def test_cef_line() -> None:
    record = deny()
    assert cef_line(record) == (
        f"CEF:0|Watchgate|Watchgate|{__version__}|decision|deny tools/call fs__read_file|7|"
        f"rt={int(T0 * 1000)} externalId=42 suser=claude-1 destinationServiceName=fs requestMethod=tools/call "
        "act=deny msg=argument matches a secret pattern in=120 "
        "cs1Label=tool cs1=read_file cs2Label=publicName cs2=fs__read_file cs3Label=plugin cs3=secrets "
        f"cs4Label=requestId cs4=7 cs5Label=hash cs5={record.hash} cs6Label=prevHash cs6={'a' * 64} "
        "cfp1Label=durationMs cfp1=1.5 cn1Label=errorCode cn1=-32010"
    )


def test_cef_escapes_and_severities() -> None:
    line = cef_line(deny(method="a|b\\c", reason="x=1\\2\r\nnext", decision="allow"))
    header, extension = line.rsplit("|", 1)
    assert "allow a\\|b\\\\c fs__read_file|3" in header
    assert "msg=x\\=1\\\\2\\r\\nnext" in extension
    assert cef_line(deny(decision="error")).split("|")[6] == "6"
    assert cef_line(deny(decision="modify")).split("|")[6] == "5"
    bare = seal(AuditEntry(event="lifecycle"), seq=0, prev_hash="p", now=T0)
    assert cef_line(bare).split("|")[4:7] == ["lifecycle", "lifecycle", "3"]


def test_syslog_message_is_rfc5424() -> None:
    record = deny()
    message = syslog_message(record, hostname="box", pid=99)
    head, body = message.split(b"] ", 1)
    assert head.decode() == (
        f'<108>1 {TIME} box watchgate 99 decision [watchgate@32473 event="decision" seq="42" '
        'client="claude-1" server="fs" method="tools/call" tool="read_file" public_name="fs__read_file" '
        f'request_id="7" decision="deny" plugin="secrets" hash="{record.hash}"'
    )
    assert body == encode_line(record)[:-1]  # ASCII: no BOM


def test_syslog_escapes_structured_data_and_marks_utf8_with_a_bom() -> None:
    message = syslog_message(deny(client='a"b]c\\', decision="allow", reason="café"), hostname="h", pid=1)
    assert message.startswith(b"<110>1 ")
    assert b'client="a\\"b\\]c\\\\"' in message
    assert b"] \xef\xbb\xbf{" in message
    assert syslog_message(deny(decision="error"), hostname="h", pid=1).startswith(b"<107>1 ")
    assert syslog_message(deny(decision="modify"), hostname="h", pid=1).startswith(b"<109>1 ")


@pytest.mark.parametrize(("name", "expected"), [("my host\u00e9!", "myhost!"), ("  ", "-")])
def test_syslog_hostname_is_printable_ascii(
    monkeypatch: pytest.MonkeyPatch, name: str, expected: str
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: name)
    assert SyslogSink("/dev/null")._hostname == expected


async def test_syslog_and_cef_file_sinks_append_lines(tmp_path: Path) -> None:
    syslog_path, cef_path = tmp_path / "audit.syslog", tmp_path / "audit.cef"
    for sink in (SyslogSink(str(syslog_path), threaded=False), CefSink(str(cef_path), threaded=False)):
        await sink.emit([deny(), deny()])
        sink.close()
    assert syslog_path.read_text().count("\n") == 2 and syslog_path.read_text().startswith("<108>1 ")
    assert cef_path.read_text().count("\nCEF:0|") == 1


async def test_syslog_to_a_unix_datagram_socket(tmp_path: Path) -> None:
    address = str(tmp_path / "log.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(address)
    try:
        sink = SyslogSink(socket_path=address, threaded=False)
        await sink.emit([deny(), deny(decision="allow")])
        first, second = server.recv(65536), server.recv(65536)
        assert first.startswith(b"<108>1 ") and second.startswith(b"<110>1 ")
        assert not first.endswith(b"\n")
        await sink.emit([deny(decision="error")])  # the same connection
        assert server.recv(65536).startswith(b"<107>1 ")
        sink.close()
        sink.close()
    finally:
        server.close()


async def test_a_missing_syslog_socket_raises_and_is_retried(tmp_path: Path) -> None:
    address = str(tmp_path / "log.sock")
    sink = SyslogSink(socket_path=address, threaded=False)
    with pytest.raises(OSError):
        await sink.emit([deny()])
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(address)
    try:
        await sink.emit([deny()])
        assert server.recv(65536).startswith(b"<108>1 ")
    finally:
        server.close()
        sink.close()


def test_build_sinks_from_config(tmp_path: Path) -> None:
    built = build_sinks(
        [
            AuditSinkConfig(type="csv", path="a.csv"),
            AuditSinkConfig(type="cef", path="a.cef"),
            AuditSinkConfig(type="syslog", path="a.log"),
            AuditSinkConfig(type="syslog", socket="/dev/log"),
        ]
    )
    assert [type(s).__name__ for s in built] == ["CsvSink", "CefSink", "SyslogSink", "SyslogSink"]
    assert [s.name for s in built] == [
        "CsvSink a.csv",
        "CefSink a.cef",
        "SyslogSink a.log",
        "SyslogSink /dev/log",
    ]


async def test_run_blocking_in_a_thread() -> None:
    assert await run_blocking(lambda: os.getpid(), threaded=True) == os.getpid()
    assert await run_blocking(trio.current_time, threaded=False) >= 0
