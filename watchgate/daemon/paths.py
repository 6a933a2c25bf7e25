"""Where the daemon keeps its socket, pid file and log, and where commands look for a config.

The runtime directory is ``$XDG_RUNTIME_DIR/watchgate`` (falling back to ``~/.watchgate/run``),
created 0700 so only its owner can reach the control socket inside it.
``$WATCHGATE_RUNTIME_DIR`` overrides it (tests, several daemons side by side).

It is ours or we refuse it (DESIGN.md section 12): not a symlink, owned by us, reachable by
nobody else, in a parent that others cannot rename it out of. Otherwise whoever planted it could
make root's daemon write its pid file and log through symlinks, or swap the socket and read
root's next ``attach``. The pid file and log are opened ``O_NOFOLLOW``, and clients check that
the socket is ours before they speak.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from watchgate.errors import ConfigNotFound, RuntimeDirUnsafe

CONFIG_ENV = "WATCHGATE_CONFIG"
RUNTIME_ENV = "WATCHGATE_RUNTIME_DIR"


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
        """Create the directory 0700 if it is missing; refuse it if it is not safely ours."""
        self.directory.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileExistsError):
            self.directory.mkdir(mode=0o700)
        self.verify()

    def verify(self) -> None:
        """Refuse (`RuntimeDirUnsafe`) a directory that is a symlink, not a directory, not ours,
        reachable by others, or in a parent others may write to; a missing one is fine."""
        where = self.directory
        try:
            info = os.lstat(where)
        except FileNotFoundError:
            return
        refuse = f"refusing the runtime directory {where}"
        if stat.S_ISLNK(info.st_mode):
            raise RuntimeDirUnsafe(f"{refuse}: it is a symlink")
        if not stat.S_ISDIR(info.st_mode):
            raise RuntimeDirUnsafe(f"{refuse}: it is not a directory")
        if info.st_uid != os.getuid():
            raise RuntimeDirUnsafe(
                f"{refuse}: it is owned by uid {info.st_uid}, not by you (uid {os.getuid()})"
            )
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise RuntimeDirUnsafe(
                f"{refuse}: it has mode {mode:04o}, others can reach it (chmod 700 {where})"
            )
        parent = os.stat(where.parent)
        if parent.st_uid not in (0, os.getuid()) or (
            parent.st_mode & 0o022 and not parent.st_mode & stat.S_ISVTX
        ):
            raise RuntimeDirUnsafe(
                f"{refuse}: its parent {where.parent} is writable by others or not owned by you or root"
            )

    def verify_socket(self) -> None:
        """Before a client speaks: the socket, if there is one, must be ours."""
        try:
            info = os.lstat(self.socket)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(info.st_mode) or info.st_uid != os.getuid():
            raise RuntimeDirUnsafe(f"refusing {self.socket}: not a socket owned by you (uid {info.st_uid})")


def open_private(path: Path, *, append: bool) -> BinaryIO:
    """Open a file of the runtime directory for writing, 0600, never through a symlink."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RuntimeDirUnsafe(f"refusing {path}: it is a symlink") from None
        raise
    return os.fdopen(fd, "ab" if append else "wb")


def runtime_paths() -> RuntimePaths:
    """Where the daemon lives; raises `RuntimeDirUnsafe` if that place exists but is not safe."""
    override = os.environ.get(RUNTIME_ENV)
    if override:
        paths = RuntimePaths(Path(override))
    elif xdg := os.environ.get("XDG_RUNTIME_DIR"):
        paths = RuntimePaths(Path(xdg) / "watchgate")
    else:
        paths = RuntimePaths(Path.home() / ".watchgate" / "run")
    paths.verify()
    return paths


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
