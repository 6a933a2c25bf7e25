"""The tool pins file: what each server's tools looked like when they were approved.

One JSON file (0600), read and written under an exclusive ``flock`` so the gateway and
``watchgate pin approve`` can both change it: every change re-reads the file, applies itself and
replaces the file atomically. The running gateway notices approvals by the file's mtime.

Location: ``state_file`` in the plugin's config (relative to the config file), else
``$WATCHGATE_STATE_DIR/watchgate-pins.json``, else ``watchgate-pins.json`` next to the config
file, else ``~/.watchgate/state/watchgate-pins.json``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

STATE_ENV: Final = "WATCHGATE_STATE_DIR"
FILE_NAME: Final = "watchgate-pins.json"
_canonical: Final = msgspec.json.Encoder(order="deterministic")

Status = Literal["approved", "changed", "new"]


class Pin(msgspec.Struct, kw_only=True, omit_defaults=True):
    approved: str | None  # the hash approved (on first sight, or by ``pin approve``); None: never
    current: str  # the hash last seen
    first_seen: str
    changed_at: str | None = None
    approved_definition: Any = None
    current_definition: Any = None  # kept only while it differs from the approved one

    @property
    def status(self) -> Status:
        if self.approved is None:
            return "new"
        return "approved" if self.approved == self.current else "changed"


class PinFile(msgspec.Struct, kw_only=True):
    version: int = 1
    servers: dict[str, dict[str, Pin]] = {}


def definition(tool: dict[str, Any]) -> dict[str, Any]:
    """What a pin covers: the tool's name, description and input schema."""
    return {key: tool.get(key) for key in ("name", "description", "inputSchema")}


def tool_hash(tool: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical.encode(definition(tool))).hexdigest()


def state_path(configured: str | None, config_dir: Path | None) -> Path:
    if configured:
        path = Path(configured).expanduser()
        return path if path.is_absolute() or config_dir is None else config_dir / path
    env = os.environ.get(STATE_ENV)
    if env:
        return Path(env).expanduser() / FILE_NAME
    if config_dir is not None:
        return config_dir / FILE_NAME
    return Path.home() / ".watchgate" / "state" / FILE_NAME


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Observation:
    status: Status
    was: Status | None  # the status before this sighting (None: never seen)


class PinStore:
    """The pins of every server, cached in memory, re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data = PinFile()
        self._stamp: tuple[int, int] | None = None
        self.refresh()

    def refresh(self) -> None:
        """Re-read the file if it changed since we last read or wrote it."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._data = self._read()
            self._stamp = stamp

    def pins(self) -> dict[str, dict[str, Pin]]:
        return self._data.servers

    def get(self, server: str, tool: str) -> Pin | None:
        return self._data.servers.get(server, {}).get(tool)

    def observe(self, server: str, tools: list[dict[str, Any]], *, trust_new: bool) -> dict[str, Observation]:
        """Record a server's tool list; the status of each tool, by name."""
        seen: dict[str, Observation] = {}
        updates: dict[str, tuple[str, dict[str, Any]]] = {}
        self.refresh()
        for tool in tools:
            name = tool.get("name")
            if not isinstance(name, str):
                continue
            digest = tool_hash(tool)
            pin = self.get(server, name)
            if pin is None or pin.current != digest:
                updates[name] = (digest, definition(tool))
            seen[name] = Observation(_status_after(pin, digest, trust_new), pin.status if pin else None)
        if updates:
            with self._locked() as data:
                pins = data.servers.setdefault(server, {})
                for name, (digest, defined) in updates.items():
                    pins[name] = _sighted(pins.get(name), digest, defined, trust_new)
        return seen

    def approve(self, server: str, tool: str) -> bool:
        """Approve what the tool looks like now; False if there is no such pin."""
        with self._locked() as data:
            pin = data.servers.get(server, {}).get(tool)
            if pin is None:
                return False
            pin.approved = pin.current
            pin.approved_definition = pin.current_definition or pin.approved_definition
            pin.current_definition = None
            pin.changed_at = None
            return True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[PinFile]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._read()
            yield data
            self._write(data)
            stat = self.path.stat()
            self._data, self._stamp = data, (stat.st_mtime_ns, stat.st_size)

    def _read(self) -> PinFile:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return PinFile()
        try:
            return msgspec.json.decode(raw, type=PinFile)
        except msgspec.DecodeError as exc:
            raise ValueError(f"{self.path} is not a valid pins file: {exc}") from None

    def _write(self, data: PinFile) -> None:
        encoded = msgspec.json.format(msgspec.json.encode(data), indent=2) + b"\n"
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(encoded)
            os.chmod(temp, 0o600)
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise


def _status_after(pin: Pin | None, digest: str, trust_new: bool) -> Status:
    if pin is None:
        return "approved" if trust_new else "new"
    if pin.approved is None:
        return "new"
    return "approved" if pin.approved == digest else "changed"


def _sighted(pin: Pin | None, digest: str, defined: dict[str, Any], trust_new: bool) -> Pin:
    if pin is None:
        approved = digest if trust_new else None
        return Pin(
            approved=approved,
            current=digest,
            first_seen=_now(),
            approved_definition=defined if trust_new else None,
            current_definition=None if trust_new else defined,
        )
    pin.current = digest
    if pin.approved == digest:
        pin.current_definition, pin.changed_at = None, None
    else:
        pin.current_definition, pin.changed_at = defined, _now()
    return pin
