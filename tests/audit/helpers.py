"""Shared helpers for the audit tests: configs in tmp_path, logs written without an actor."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import trio

from watchgate.audit.actor import AuditActor
from watchgate.audit.chain import ChainWriter
from watchgate.audit.record import AuditEntry, AuditRecord, decode_record
from watchgate.audit.sinks import Sink
from watchgate.config import AuditConfig

T0 = 1_780_000_000.0  # a fixed wall-clock time, 2026-05-28


class Clock:
    """A wall clock that ticks one millisecond per reading (the writer reads it once per batch
    it writes), so every batch has its own time."""

    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def audit_config(path: Path, **overrides: Any) -> AuditConfig:
    return AuditConfig(path=str(path), **overrides)


def call(n: int, **fields: Any) -> AuditEntry:
    """A typical request entry, numbered ``n``."""
    defaults: dict[str, Any] = {
        "event": "request",
        "client": "c1",
        "server": "fs",
        "method": "tools/call",
        "tool": "read_file",
        "public_name": "fs__read_file",
        "request_id": n,
    }
    return AuditEntry(**{**defaults, **fields})


def write_log(path: Path, count: int, *, max_bytes: int = 10 * 1024 * 1024, keep: int = 10) -> ChainWriter:
    """A log of a genesis record plus ``count`` calls, written straight through the chain writer."""
    writer = ChainWriter(str(path), max_bytes=max_bytes, keep=keep, clock=Clock())
    writer.open()
    result = writer.append([call(i) for i in range(count)])
    assert result.error is None
    writer.close(sync=False)
    return writer


def records(path: Path) -> list[AuditRecord]:
    return [decode_record(line) for line in path.read_bytes().splitlines()]


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def edit(record_line: bytes, **changes: Any) -> bytes:
    """The same JSON line with some fields changed (and the hash left as it was)."""
    data = msgspec.json.decode(record_line)
    data.update(changes)
    return msgspec.json.encode(data) + b"\n"


@asynccontextmanager
async def running(actor: AuditActor) -> AsyncIterator[AuditActor]:
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        try:
            yield actor
        finally:
            actor.stop()


class MemorySink(Sink):
    """Keeps what it is given; ``delay`` makes it slow (trio time), ``fail`` makes it raise."""

    def __init__(self, *, delay: float = 0.0) -> None:
        super().__init__("memory")
        self.delay = delay
        self.fail = False
        self.closed = False
        self.got: list[AuditRecord] = []

    async def emit(self, records: Sequence[AuditRecord]) -> None:
        if self.delay:
            await trio.sleep(self.delay)
        if self.fail:
            raise OSError("sink is down")
        self.got += records

    def close(self) -> None:
        self.closed = True
