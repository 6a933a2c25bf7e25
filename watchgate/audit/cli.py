"""``watchgate audit tail | verify | stats``: reading the audit log without the daemon.

They read the files directly, so they work on a copy of a log, on a machine without Watchgate
running, and while the daemon is down. The log path is the argument, else ``audit.path`` of
``-c CONFIG``, else ``./watchgate-audit.jsonl``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

import msgspec

from watchgate.audit.files import (
    DEFAULT_LOG_PATH,
    log_files,
    read_lines,
    resolved_audit_config,
    rotated_files,
)
from watchgate.audit.record import AuditRecord, decode_record
from watchgate.audit.verify import verify_log
from watchgate.config.load import load_config
from watchgate.errors import ConfigError
from watchgate.sanitize import escape_controls

__all__ = ["format_record", "parse_duration", "register"]

POLL_SECONDS = 0.5
_sleep = time.sleep  # tests replace it: following a file must not cost them real time
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def register(commands: Any) -> None:
    """Add ``audit`` and its sub-commands to the ``watchgate`` parser (``cli.main.COMMANDS``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", help="take the log path from this config's audit.path")
    common.add_argument("path", nargs="?", metavar="PATH", help=f"the log (default: ./{DEFAULT_LOG_PATH})")

    audit = commands.add_parser("audit", help="read, verify and summarise the audit log")
    sub = audit.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)

    tail = sub.add_parser("tail", parents=[common], help="one readable line per record")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    tail.add_argument("-n", "--lines", type=int, default=20, metavar="N", help="last N records (20)")
    tail.add_argument("--server", metavar="NAME", help="only this server's records")
    tail.add_argument("--tool", metavar="GLOB", help="only tools matching GLOB (own or public name)")
    tail.add_argument("--decision", choices=("allow", "deny", "modify", "error"), help="only this decision")
    tail.add_argument("--user", metavar="NAME", help="only this caller's records (a token's name, a user)")
    tail.add_argument(
        "--approvals",
        action="store_true",
        help="only approvals: asked, approved, denied, timed out, withdrawn",
    )
    tail.set_defaults(func=tail_command)

    verify = sub.add_parser("verify", parents=[common], help="check the hash chain across rotated files")
    verify.set_defaults(func=verify_command)

    stats = sub.add_parser("stats", parents=[common], help="counts by event, server, tool and decision")
    stats.add_argument("--since", metavar="DURATION", help="only the last DURATION, e.g. 30m, 1h30m, 7d")
    stats.set_defaults(func=stats_command)


def _log_path(args: argparse.Namespace) -> str | None:
    if args.path:
        return str(args.path)
    if args.config:
        try:
            return resolved_audit_config(load_config(args.config)).path
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return None
    return DEFAULT_LOG_PATH


def _records(files: Iterable[str]) -> Iterator[AuditRecord]:
    """Every readable record in order; unreadable lines are named on stderr and skipped."""
    for file in files:
        for line in read_lines(file):
            if not line.complete:
                print(f"{file}:{line.number}: skipping an incomplete last line", file=sys.stderr)
                continue
            try:
                yield decode_record(line.data)
            except msgspec.DecodeError as exc:
                print(f"{file}:{line.number}: skipping, not an audit record ({exc})", file=sys.stderr)


#: the record that stands for a call once: its request's, or the one that holds request and answer
_CALLS = frozenset({"request", "call"})


def format_record(record: AuditRecord) -> str:
    """One readable line: when, sequence, what, who, where, verdict, how long, why."""
    parts = [record.time, f"#{record.seq}", record.event]
    if record.decision:
        parts.append(record.decision.upper())
    if record.client:
        parts.append(f"client={record.client}")
    if record.principal:
        parts.append(f"user={record.principal}")
    parts += [part for part in (record.server, record.method, record.tool) if part]
    if record.public_name and record.public_name != record.tool:
        parts.append(f"({record.public_name})")
    if record.request_id is not None:
        parts.append(f"id={record.request_id}")
    if record.plugin:
        parts.append(f"plugin={record.plugin}")
    if record.duration_ms is not None:
        parts.append(f"{record.duration_ms:.1f}ms")
    sizes = (record.request_bytes, record.response_bytes)
    if sizes != (None, None):
        parts.append("bytes=" + "/".join("-" if size is None else str(size) for size in sizes))
    if record.error_code is not None:
        parts.append(f"error={record.error_code}")
    if record.reason:
        parts.append(json.dumps(record.reason, ensure_ascii=False))
    return escape_controls(" ".join(parts))  # a log written by anything else may hold raw controls


def _matcher(args: argparse.Namespace) -> Callable[[AuditRecord], bool]:
    def match(record: AuditRecord) -> bool:
        if args.server is not None and record.server != args.server:
            return False
        if args.decision is not None and record.decision != args.decision:
            return False
        if args.user is not None and record.principal != args.user:
            return False
        if args.approvals and record.event != "approval":
            return False
        if args.tool is not None:
            names = [name for name in (record.tool, record.public_name) if name]
            return any(fnmatch.fnmatchcase(name, args.tool) for name in names)
        return True

    return match


def tail_command(args: argparse.Namespace) -> int:
    path = _log_path(args)
    if path is None:
        return 1
    files = log_files(path)
    if not files and not args.follow:
        print(f"no audit log at {path}", file=sys.stderr)
        return 1
    match = _matcher(args)
    recent: deque[AuditRecord] = deque(maxlen=max(args.lines, 0))
    recent.extend(record for record in _records(files) if match(record))
    for record in recent:
        print(format_record(record))
    if args.follow:
        try:
            _follow(path, match)
        except KeyboardInterrupt:  # Ctrl-C is how a follow ends: as any Unix tool, status 130
            return 130
    return 0


def _follow(path: str, match: Callable[[AuditRecord], bool]) -> None:
    """Print records appended to ``path`` until interrupted, following it across rotations."""
    inode, offset = _position(path)
    pending = b""
    while True:
        sys.stdout.flush()
        _sleep(POLL_SECONDS)
        data, inode, offset = _read_new(path, inode, offset)
        lines, pending = _split(pending + data)
        for line in lines:
            try:
                record = decode_record(line)
            except msgspec.DecodeError:
                print(f"skipping a line that is not an audit record: {line[:80]!r}", file=sys.stderr)
                continue
            if match(record):
                print(format_record(record))


def _read_new(path: str, inode: int | None, offset: int) -> tuple[bytes, int | None, int]:
    """What was appended since ``offset``; after a rotation, the old file's rest, then the new file."""
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed by the with below; opened first for its inode
    except FileNotFoundError:
        return b"", inode, offset  # between a rotation's rename and the new file: next poll
    with stream:
        stat = os.fstat(stream.fileno())
        data = b""
        if stat.st_ino != inode or stat.st_size < offset:
            data = _read_rotated(path, inode, offset)
            inode, offset = stat.st_ino, 0
        stream.seek(offset)
        fresh = stream.read()
    return data + fresh, inode, offset + len(fresh)


def _position(path: str) -> tuple[int | None, int]:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None, 0
    return stat.st_ino, stat.st_size


def _read_from(path: str, offset: int) -> bytes:
    try:
        with open(path, "rb") as stream:
            stream.seek(offset)
            return stream.read()
    except FileNotFoundError:
        return b""


def _read_rotated(path: str, inode: int | None, offset: int) -> bytes:
    """The rest of the file we were following, now renamed by rotation, and any rotated after it."""
    rotated = rotated_files(path)
    for number in sorted(rotated):
        if inode is not None and _position(rotated[number])[0] == inode:
            newer = [_read_from(rotated[n], 0) for n in range(number - 1, 0, -1) if n in rotated]
            return _read_from(rotated[number], offset) + b"".join(newer)
    return b""


def _split(data: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines, and the unfinished rest to keep for the next read."""
    *lines, rest = data.split(b"\n")
    return lines, rest


def parse_duration(text: str) -> float:
    """``90``, ``45s``, ``30m``, ``1h30m``, ``7d``, ``2w`` -> seconds; ValueError otherwise."""
    spec = text.strip().lower()
    parts = _DURATION.findall(spec)
    if not spec or "".join(number + unit for number, unit in parts) != spec:
        raise ValueError(f"not a duration: {text!r} (examples: 90s, 30m, 1h30m, 7d)")
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def stats_command(args: argparse.Namespace) -> int:
    path = _log_path(args)
    if path is None:
        return 1
    try:
        cutoff = time.time() - parse_duration(args.since) if args.since else None
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    files = log_files(path)
    if not files:
        print(f"no audit log at {path}", file=sys.stderr)
        return 1
    tables: dict[str, Counter[str]] = {name: Counter() for name in ("event", "server", "tool", "decision")}
    total, first, last = 0, None, None
    for record in _records(files):
        if cutoff is not None and datetime.fromisoformat(record.time).timestamp() < cutoff:
            continue
        total += 1
        first, last = first or record.time, record.time
        tables["event"][record.event] += 1
        if record.event in _CALLS:  # one per call: responses and decisions would count it again
            tables["server"][record.server or "-"] += 1
            if record.tool:
                tables["tool"][f"{record.server}/{record.tool}" if record.server else record.tool] += 1
        if record.decision:
            tables["decision"][record.decision] += 1
    window = f" in the last {args.since}" if args.since else ""
    span = f", {first} to {last}" if total else ""
    print(f"records: {total}{window}{span}")
    headings = {"event": "by event", "server": "calls by server", "tool": "calls by tool"}
    for name, counts in tables.items():
        if counts:
            print(f"{headings.get(name, 'by decision')}:")
            width = max(len(key) for key in counts)
            for key, count in counts.most_common():
                print(f"  {key:<{width}}  {count}")
    return 0


def verify_command(args: argparse.Namespace) -> int:
    path = _log_path(args)
    if path is None:
        return 1
    if not log_files(path):  # nothing to judge: not a broken chain, and not an intact one
        print(f"watchgate: no audit log at {path}: nothing to verify", file=sys.stderr)
        return 1
    result = verify_log(path)
    for line in result.report():
        print(line)
    return 0 if result.ok else 1
