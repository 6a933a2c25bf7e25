"""``watchgate audit tail | verify | stats``, called in-process."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import watchgate.audit.cli as cli
from watchgate.audit.chain import ChainWriter
from watchgate.audit.cli import format_record, parse_duration, register
from watchgate.audit.record import AuditEntry, encode_line, seal

from .helpers import T0, Clock, call, lines, write_log


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="watchgate")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def mixed_log(path: Path, *, at: float | None = None, max_bytes: int = 1 << 20) -> ChainWriter:
    """Calls to two servers with decisions, as the gateway would log them."""
    writer = ChainWriter(str(path), max_bytes=max_bytes, keep=10, clock=Clock(at or time.time()))
    writer.open()
    entries = [
        call(1),
        call(1, event="decision", decision="allow", plugin="acl"),
        call(1, event="response", decision="allow", duration_ms=12.25, request_bytes=80, response_bytes=300),
        call(2, server="git", tool="git_log", public_name="git__git_log"),
        call(
            2,
            event="decision",
            server="git",
            tool="git_log",
            public_name="git__git_log",
            decision="deny",
            plugin="secrets",
            reason="looks like a token",
            error_code=-32010,
        ),
        call(3, tool="write_file", public_name="fs__write_file"),
    ]
    assert writer.append(entries).error is None
    writer.close(sync=False)
    return writer


# -- verify -----------------------------------------------------------------------------------------


def test_verify_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    assert run("audit", "verify", str(path)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ok: 3 records, first 2026-05-28T20:26:40.001000Z, last 2026-05-28T20:26:40.00")
    assert out[1].startswith("files: 1, last hash ")


def test_verify_broken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    content = lines(path)
    del content[1]
    path.write_bytes(b"".join(content))
    assert run("audit", "verify", str(path)) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"broken: {path} line 2 (seq 2): prev_hash does not match the previous record")
    assert out[1].startswith("  expected: ") and out[2].startswith("  found:    ")


def test_verify_takes_the_path_from_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "conf").mkdir()
    config = tmp_path / "conf" / "w.yaml"
    config.write_text("proxy:\n  upstream: {command: [srv]}\naudit:\n  path: logs/a.jsonl\n")
    (tmp_path / "conf" / "logs").mkdir()
    write_log(tmp_path / "conf" / "logs" / "a.jsonl", 1)
    assert run("audit", "verify", "-c", str(config)) == 0
    assert capsys.readouterr().out.startswith("ok: 2 records")


def test_the_default_path_is_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("audit", "verify") == 1
    said = capsys.readouterr()
    assert (said.out, said.err) == (
        "",
        "watchgate: no audit log at watchgate-audit.jsonl: nothing to verify\n",
    )
    write_log(tmp_path / "watchgate-audit.jsonl", 1)
    assert run("audit", "verify") == 0


def test_a_bad_config_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("verify", "tail", "stats"):
        assert run("audit", command, "-c", str(tmp_path / "missing.yaml")) == 1
        assert "file not found" in capsys.readouterr().err


# -- tail -------------------------------------------------------------------------------------------


def test_tail_prints_one_readable_line_per_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "audit.jsonl"
    mixed_log(path)
    assert run("audit", "tail", str(path)) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 7
    assert out[0].endswith(' lifecycle genesis "a new audit chain starts here"')
    assert (
        " #3 response ALLOW client=c1 fs tools/call read_file (fs__read_file) id=1 12.2ms bytes=80/300"
        in out[3]
    )
    assert out[5].endswith(
        'DENY client=c1 git tools/call git_log (git__git_log) id=2 plugin=secrets error=-32010 "looks like a token"'
    )


@pytest.mark.parametrize(
    ("options", "ids"),
    [
        (["--server", "git"], [2, 2]),
        (["--tool", "*write*"], [3]),
        (["--tool", "git__*"], [2, 2]),
        (["--decision", "deny"], [2]),
        (["--server", "fs", "--decision", "allow"], [1, 1]),
        (["-n", "2"], [2, 3]),
        (["-n", "0"], []),
    ],
)
def test_tail_filters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], ids: list[int]
) -> None:
    path = tmp_path / "audit.jsonl"
    mixed_log(path)
    assert run("audit", "tail", *options, str(path)) == 0
    out = capsys.readouterr().out.splitlines()
    assert [int(line.split(" id=")[1].split()[0]) for line in out] == ids


def test_tail_skips_lines_it_cannot_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 1)
    with open(path, "ab") as stream:
        stream.write(b'junk\n{"time"')
    assert run("audit", "tail", str(path)) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 2
    assert f"{path}:3: skipping, not an audit record" in captured.err
    assert f"{path}:4: skipping an incomplete last line" in captured.err


def test_tail_without_a_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("audit", "tail", str(tmp_path / "none.jsonl")) == 1
    assert "no audit log at" in capsys.readouterr().err


def test_tail_follow_across_appends_partial_lines_and_rotation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit.jsonl"
    writer = ChainWriter(str(path), max_bytes=1500, keep=5, clock=Clock())
    writer.open()
    writer.append([call(1)])

    line = encode_line(seal(call(50), seq=99, prev_hash="p", now=T0))

    def append(data: bytes) -> None:
        with open(path, "ab") as stream:
            stream.write(data)

    steps: list[Callable[[], object]] = [
        lambda: writer.append([call(2), call(3, server="git")]),
        lambda: writer.append([call(i) for i in range(4, 12)]),  # rotates twice on the way
        lambda: append(b"junk\n" + line[:10]),
        lambda: None,
        lambda: append(line[10:]),
    ]

    def fake_sleep(seconds: float) -> None:
        assert seconds == cli.POLL_SECONDS
        if not steps:
            raise KeyboardInterrupt
        steps.pop(0)()

    monkeypatch.setattr(cli, "_sleep", fake_sleep)
    assert run("audit", "tail", "-f", "--server", "fs", str(path)) == 130  # ended by Ctrl-C
    captured = capsys.readouterr()
    ids = [int(line.split(" id=")[1].split()[0]) for line in captured.out.splitlines()]
    assert ids == [1, 2, *range(4, 12), 50]
    assert "skipping a line that is not an audit record: b'junk'" in captured.err
    assert (tmp_path / "audit.jsonl.2").exists()


def test_reading_a_file_that_vanished_gives_nothing(tmp_path: Path) -> None:
    assert cli._read_from(str(tmp_path / "gone"), 0) == b""


def test_tail_follow_waits_for_the_log_to_appear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit.jsonl"
    steps: list[Callable[[], object]] = [lambda: None, lambda: write_log(path, 1)]

    def fake_sleep(seconds: float) -> None:
        if not steps:
            raise KeyboardInterrupt
        steps.pop(0)()

    monkeypatch.setattr(cli, "_sleep", fake_sleep)
    assert run("audit", "tail", "-f", str(path)) == 130
    assert len(capsys.readouterr().out.splitlines()) == 2


# -- stats ------------------------------------------------------------------------------------------


def test_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "audit.jsonl"
    mixed_log(path)
    assert run("audit", "stats", str(path)) == 0
    out = capsys.readouterr().out
    assert out.startswith("records: 7, 20")
    assert "by event:\n  request    3\n  decision   2\n  lifecycle  1\n  response   1\n" in out
    assert "calls by server:\n  fs   2\n  git  1\n" in out
    assert "calls by tool:\n  fs/read_file   1\n  git/git_log    1\n  fs/write_file  1\n" in out
    assert "by decision:\n  allow  2\n  deny   1\n" in out


def test_stats_since_a_duration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "audit.jsonl"
    mixed_log(path, at=time.time() - 7200)
    writer = ChainWriter(str(path), max_bytes=1 << 20, keep=10, clock=Clock(time.time()))
    writer.open()
    writer.append([AuditEntry(event="request", tool="lonely"), AuditEntry(event="request", method="ping")])
    writer.close(sync=False)
    assert run("audit", "stats", "--since", "1h", str(path)) == 0
    out = capsys.readouterr().out
    assert out.startswith("records: 3 in the last 1h, ")  # the resume header and two calls
    assert "calls by server:\n  -  2\n" in out and "calls by tool:\n  lonely  1\n" in out
    assert "by decision" not in out


def test_stats_with_nothing_in_the_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "audit.jsonl"
    mixed_log(path, at=T0 - 86400 * 365)
    assert run("audit", "stats", "--since", "1d", str(path)) == 0
    assert capsys.readouterr().out == "records: 0 in the last 1d\n"


def test_stats_count_a_call_record_as_one_call(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "audit.jsonl"
    writer = ChainWriter(str(path), max_bytes=1 << 20, keep=10, clock=Clock(time.time()))
    writer.open()
    writer.append(
        [
            AuditEntry(event="call", server="fs", tool="read_file", decision="allow"),
            AuditEntry(event="request", server="fs", tool="read_file"),
            AuditEntry(event="response", server="fs", tool="read_file", decision="allow"),
        ]
    )
    writer.close(sync=False)
    assert run("audit", "stats", str(path)) == 0
    out = capsys.readouterr().out
    assert "calls by server:\n  fs  2\n" in out and "calls by tool:\n  fs/read_file  2\n" in out


def test_stats_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("audit", "stats", "--since", "soon", str(tmp_path / "a.jsonl")) == 2
    assert "not a duration: 'soon'" in capsys.readouterr().err
    assert run("audit", "stats", str(tmp_path / "a.jsonl")) == 1
    assert "no audit log at" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("45s", 45),
        ("30m", 1800),
        ("1h30m", 5400),
        ("7d", 604800),
        ("2w", 1209600),
        ("1.5h", 5400),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1x", "1h 2", "-1h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_format_record_of_a_bare_record() -> None:
    record = seal(
        AuditEntry(event="notification", server="fs", method="notifications/message"),
        seq=3,
        prev_hash="p",
        now=T0,
    )
    assert format_record(record) == "2026-05-28T20:26:40.000000Z #3 notification fs notifications/message"
    both = seal(
        AuditEntry(event="response", response_bytes=5, tool="t", public_name="t"),
        seq=4,
        prev_hash="p",
        now=T0,
    )
    assert format_record(both).endswith("#4 response t bytes=-/5")
