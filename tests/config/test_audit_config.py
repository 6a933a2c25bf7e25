"""The ``audit:`` section: defaults, every key, sink rules, and where relative paths point."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from watchgate.audit import resolved_audit_config
from watchgate.config import AuditConfig, AuditSinkConfig, load_config, parse_config
from watchgate.errors import ConfigError

BASE = "proxy:\n  upstream: {command: [srv]}\n"


def problems(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + textwrap.dedent(text))
    return [(p.path, p.line, p.message) for p in info.value.problems]


def test_defaults() -> None:
    audit = parse_config(BASE).audit
    assert audit == AuditConfig()
    assert (audit.enabled, audit.path, audit.include_payloads) == (True, "watchgate-audit.jsonl", False)
    assert (audit.on_failure, audit.fsync, audit.fsync_interval) == ("block", "interval", 1.0)
    assert (audit.max_bytes, audit.keep, audit.sinks, audit.mailbox_size) == (10 * 1024 * 1024, 10, (), 1024)


def test_every_key_is_read() -> None:
    audit = parse_config(
        BASE
        + textwrap.dedent(
            """\
            audit:
              enabled: false
              path: /var/log/wg.jsonl
              include_payloads: true
              on_failure: continue
              fsync: always
              fsync_interval: 0.25
              max_bytes: 1048576
              keep: 3
              mailbox_size: 64
              sinks:
                - {type: csv, path: a.csv}
                - {type: cef, path: a.cef}
                - {type: syslog, path: a.log}
                - {type: syslog, socket: /dev/log}
            """
        )
    ).audit
    assert audit == AuditConfig(
        enabled=False,
        path="/var/log/wg.jsonl",
        include_payloads=True,
        on_failure="continue",
        fsync="always",
        fsync_interval=0.25,
        max_bytes=1048576,
        keep=3,
        mailbox_size=64,
        sinks=(
            AuditSinkConfig(type="csv", path="a.csv"),
            AuditSinkConfig(type="cef", path="a.cef"),
            AuditSinkConfig(type="syslog", path="a.log"),
            AuditSinkConfig(type="syslog", socket="/dev/log"),
        ),
    )


@pytest.mark.parametrize(
    ("text", "path", "line", "message"),
    [
        (
            "audit:\n  on_failure: ignore\n",
            "audit.on_failure",
            4,
            'expected one of block, continue, got "ignore"',
        ),
        (
            "audit:\n  fsync: sometimes\n",
            "audit.fsync",
            4,
            'expected one of always, interval, never, got "sometimes"',
        ),
        ("audit:\n  fsync_interval: 0\n", "audit.fsync_interval", 4, "expected a number > 0.0, got 0"),
        ("audit:\n  keep: 0\n", "audit.keep", 4, "expected an integer >= 1, got 0"),
        ("audit:\n  max_bytes: 100\n", "audit.max_bytes", 4, "expected an integer >= 4096, got 100"),
        ("audit:\n  mailbox_size: 0\n", "audit.mailbox_size", 4, "expected an integer >= 1, got 0"),
        ("audit:\n  pth: x\n", "audit.pth", 4, "unknown key 'pth' (did you mean 'path'?)"),
        (
            "audit:\n  sinks:\n    - {type: xml, path: a}\n",
            "audit.sinks[0].type",
            5,
            'expected one of cef, csv, syslog, got "xml"',
        ),
        (
            "audit:\n  sinks:\n    - {type: csv}\n",
            "audit.sinks[0]",
            5,
            "a sink needs 'path' (a file) or, for syslog, 'socket' (a Unix socket)",
        ),
        (
            "audit:\n  sinks:\n    - {type: cef, socket: /dev/log}\n",
            "audit.sinks[0]",
            5,
            "'socket' is only for syslog sinks; a cef sink needs 'path'",
        ),
        (
            "audit:\n  sinks:\n    - {type: syslog, socket: /dev/log, path: x}\n",
            "audit.sinks[0]",
            5,
            "give either 'path' or 'socket' for a sink, not both",
        ),
    ],
)
def test_problems_are_placed(text: str, path: str, line: int, message: str) -> None:
    assert problems(text) == [(path, line, message)]


def test_relative_paths_are_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf").mkdir()
    config_file = tmp_path / "conf" / "w.yaml"
    config_file.write_text(
        BASE
        + "audit:\n  path: logs/a.jsonl\n  sinks:\n"
        + "    - {type: csv, path: a.csv}\n    - {type: cef, path: /abs/a.cef}\n"
        + "    - {type: syslog, socket: /dev/log}\n    - {type: syslog, path: ~/a.log}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", "/home/someone")
    audit = resolved_audit_config(load_config("conf/w.yaml"))
    assert audit.path == str(tmp_path / "conf" / "logs" / "a.jsonl")
    assert [(s.path, s.socket) for s in audit.sinks] == [
        (str(tmp_path / "conf" / "a.csv"), None),
        ("/abs/a.cef", None),
        (None, "/dev/log"),
        ("/home/someone/a.log", None),
    ]


def test_without_a_config_file_paths_are_relative_to_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolved_audit_config(parse_config(BASE)).path == str(tmp_path / "watchgate-audit.jsonl")
