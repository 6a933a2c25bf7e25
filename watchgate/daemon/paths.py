"""Where the daemon keeps its socket, pid file and log, and where commands look for a config.

The runtime directory is ``/run/user/<uid>/watchgate`` when ``/run/user/<uid>`` is ours, else
``~/.watchgate/run``, created 0700 so only its owner can reach the control socket inside it.
It does not follow ``$XDG_RUNTIME_DIR``: MCP clients pass their servers a filtered environment
(the official SDK's stdio client keeps only HOME, LOGNAME, PATH, SHELL, TERM and USER), so a
daemon started from a desktop shell and an ``attach`` launched by such a client must arrive at the
same place from the uid alone. Clients still look in ``$XDG_RUNTIME_DIR/watchgate`` (where earlier
versions put the daemon) before deciding none runs: `find_daemon`.
``$WATCHGATE_RUNTIME_DIR`` overrides all of it (tests, several daemons side by side).

It is ours or we refuse it (design.md §12): not a symlink, owned by us, reachable by
nobody else, in a parent that others cannot rename it out of. Otherwise whoever planted it could
make root's daemon write its pid file and log through symlinks, or swap the socket and read
root's next ``attach``. The pid file and log are opened ``O_NOFOLLOW``, and clients check that
the socket is ours before they speak.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
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


RUN_USER = Path("/run/user")  # systemd-logind's per-user tmpfs, the same whatever the environment


def _ours(directory: Path) -> bool:
    try:
        info = os.lstat(directory)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()


def runtime_candidates() -> list[RuntimePaths]:
    """Every place a daemon of this user can live, the one a new daemon takes first."""
    override = os.environ.get(RUNTIME_ENV)
    if override:
        return [RuntimePaths(Path(override))]
    places: list[Path] = []
    user_dir = RUN_USER / str(os.getuid())
    if _ours(user_dir):
        places.append(user_dir / "watchgate")
    places.append(Path.home() / ".watchgate" / "run")
    if xdg := os.environ.get("XDG_RUNTIME_DIR"):  # where earlier versions put it
        places.append(Path(xdg) / "watchgate")
    unique = list(dict.fromkeys(p.absolute() for p in places))
    return [RuntimePaths(p) for p in unique]


def runtime_paths() -> RuntimePaths:
    """Where a daemon started now lives; raises `RuntimeDirUnsafe` if that place exists but is
    not safe."""
    paths = runtime_candidates()[0]
    paths.verify()
    return paths


def socket_answers(path: Path) -> bool:
    """A daemon listens on ``path`` (a plain connect: no event loop needed to ask)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def find_daemon() -> RuntimePaths:
    """The runtime directory of this user's running daemon, wherever it is among
    `runtime_candidates`; where a new one would go (`runtime_paths`) when none runs.
    A place that is not safely ours is skipped; if the new daemon's own place is such a
    place, `RuntimeDirUnsafe` says why."""
    for candidate in runtime_candidates():
        try:
            candidate.verify()
            candidate.verify_socket()
        except RuntimeDirUnsafe:
            continue
        if socket_answers(candidate.socket):
            return candidate
    return runtime_paths()


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
