"""Where the daemon keeps its socket, pid file and log, and where commands look for a config.

The runtime directory is ``$XDG_RUNTIME_DIR/watchgate`` (falling back to ``~/.watchgate/run``),
created 0700 so only its owner can reach the control socket inside it.
``$WATCHGATE_RUNTIME_DIR`` overrides it (tests, several daemons side by side).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from watchgate.errors import WatchgateError

CONFIG_ENV = "WATCHGATE_CONFIG"
RUNTIME_ENV = "WATCHGATE_RUNTIME_DIR"


class ConfigNotFound(WatchgateError):
    pass


@dataclass(frozen=True)
class RuntimePaths:
    directory: Path

    @property
    def socket(self) -> Path:
        return self.directory / "control.sock"

    @property
    def pid_file(self) -> Path:
        return self.directory / "watchgate.pid"

    @property
    def log_file(self) -> Path:
        return self.directory / "watchgate.log"

    def ensure(self) -> None:
        """Create the directory 0700 (and tighten it if it already exists)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)


def runtime_paths() -> RuntimePaths:
    override = os.environ.get(RUNTIME_ENV)
    if override:
        return RuntimePaths(Path(override))
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return RuntimePaths(Path(xdg) / "watchgate")
    return RuntimePaths(Path.home() / ".watchgate" / "run")


def find_config(flag: str | None) -> Path:
    """The config file: the flag, ``$WATCHGATE_CONFIG``, ``./supervisor.yaml``, then
    ``~/.config/watchgate/supervisor.yaml`` — the first that is given (or exists)."""
    if flag:
        return Path(flag)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    candidates = [Path("supervisor.yaml"), Path.home() / ".config" / "watchgate" / "supervisor.yaml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise ConfigNotFound(f"no config file: give -c FILE, set ${CONFIG_ENV}, or create one of: {tried}")
