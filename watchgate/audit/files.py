"""Where the audit log lives on disk, and reading it back.

The writer, ``verify``, ``tail`` and ``stats`` must agree on which files make up one log and
in which order, so that knowledge lives here once: ``audit.jsonl`` is the current file,
``audit.jsonl.1`` the newest rotated one, ``audit.jsonl.N`` the oldest still kept.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import msgspec

from watchgate.config.schema import AuditConfig, GatewayConfig

__all__ = [
    "DEFAULT_LOG_PATH",
    "LogLine",
    "log_files",
    "read_lines",
    "resolved_audit_config",
    "rotated_files",
]

DEFAULT_LOG_PATH = "watchgate-audit.jsonl"


def resolved_audit_config(config: GatewayConfig) -> AuditConfig:
    """``config.audit`` with every path absolute, relative ones taken from the config file's folder.

    Like an upstream's ``cwd``: the daemon may run from any directory, and the log must land
    next to the configuration that named it, not wherever the daemon happened to start.
    """
    base = os.path.dirname(os.path.abspath(config.source)) if config.source else os.getcwd()

    def resolve(path: str) -> str:
        return os.path.normpath(os.path.join(base, os.path.expanduser(path)))

    audit = config.audit
    sinks = tuple(
        msgspec.structs.replace(sink, path=resolve(sink.path)) if sink.path is not None else sink
        for sink in audit.sinks
    )
    return msgspec.structs.replace(audit, path=resolve(audit.path), sinks=sinks)


def rotated_files(path: str) -> dict[int, str]:
    """The rotated files of the log at ``path``, by number (1 is the newest)."""
    directory = os.path.dirname(path) or "."
    pattern = re.compile(re.escape(os.path.basename(path)) + r"\.([1-9][0-9]*)")
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return {}
    found = {}
    for name in names:
        match = pattern.fullmatch(name)
        if match:
            found[int(match[1])] = os.path.join(directory, name)
    return found


def log_files(path: str) -> list[str]:
    """Every file of the log that exists, oldest first: ``path.N`` … ``path.1``, then ``path``."""
    rotated = rotated_files(path)
    files = [rotated[n] for n in sorted(rotated, reverse=True)]
    if os.path.exists(path):
        files.append(path)
    return files


@dataclass(frozen=True)
class LogLine:
    """One line of a log file. ``complete`` is false for a last line with no newline."""

    file: str
    number: int
    data: bytes
    complete: bool


def read_lines(file: str) -> Iterator[LogLine]:
    """The lines of one file, numbered from 1, without their newlines."""
    with open(file, "rb") as stream:
        for number, raw in enumerate(stream, start=1):
            complete = raw.endswith(b"\n")
            yield LogLine(file, number, raw[:-1] if complete else raw, complete)
