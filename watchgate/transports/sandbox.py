"""An OS sandbox and resource limits for a stdio server (ADR-018).

A third-party server (``npx some-server``) runs with the user's full rights unless it is
fenced in. With ``sandbox.enabled`` the server runs under bubblewrap (``bwrap``): a mount
namespace with the whole system read-only, the home directory replaced by an empty one except
the folders the config lists, credential folders (``~/.ssh``, ``~/.aws``, …) hidden even inside
a listed folder, a private ``/tmp``, no network when ``network: false``, and a PID namespace of
its own, so the server's whole tree dies with it (``--die-with-parent``).

Where bwrap is missing or cannot create namespaces, the server does not start (a clear error
naming the cause and the fix) unless ``sandbox.required: false``, which runs it unsandboxed and
says so in ``ps``. Resource limits are rlimits set in the child before ``exec``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import resource
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from watchgate.errors import UpstreamStartError

if TYPE_CHECKING:
    from watchgate.config.schema import LimitsConfig, SandboxConfig

# Always hidden, even inside a folder the config lists (design.md §12).
CREDENTIAL_DIRS: Final = (
    ".ssh", ".aws", ".azure", ".gnupg", ".kube", ".docker", ".config/gcloud", ".config/gh",
    ".local/share/keyrings", ".password-store", ".netrc", ".git-credentials", ".npmrc", ".pypirc",
    # Watchgate's own OAuth tokens and pins, and the MCP clients' configs (other servers' secrets)
    ".config/watchgate", ".watchgate", ".claude.json", ".claude", ".config/Claude", ".cursor",
    ".config/Code/User", ".codeium", "Library/Application Support/Claude",
    "Library/Application Support/Code/User",
)  # fmt: skip
#: Where a daemon's control socket (and the user's session services) live: never inside a
#: sandbox, or a server could attach to the gateway that confines it and call the others.
RUNTIME_ENV_DIRS: Final = ("XDG_RUNTIME_DIR", "WATCHGATE_RUNTIME_DIR")
FIX: Final = "install bubblewrap (Debian/Ubuntu: apt install bubblewrap), or set sandbox.required: false"


class Confinement:
    """How one start of a server is wrapped; ``label`` is what ``ps`` shows."""

    def __init__(self, argv: list[str], label: str) -> None:
        self.argv = argv
        self.label = label


def confine(argv: Sequence[str], sandbox: SandboxConfig | None) -> Confinement:
    """The command line that runs ``argv`` inside the sandbox (or as it is, when there is none)."""
    if sandbox is None or not sandbox.enabled:
        return Confinement(list(argv), "-")
    problem = bwrap_problem()
    if problem is not None:
        if sandbox.required:
            raise UpstreamStartError(f"sandbox: {problem}; {FIX}")
        return Confinement(list(argv), "UNSANDBOXED")
    label = "bwrap" if sandbox.network else "bwrap net:off"
    return Confinement([*bwrap_argv(sandbox, home=Path.home(), runtime=runtime_dirs()), "--", *argv], label)


def runtime_dirs() -> list[Path]:
    """This user's runtime directories (``/run/user/<uid>``, ``$XDG_RUNTIME_DIR``, a daemon's
    ``$WATCHGATE_RUNTIME_DIR``) that exist: what every sandbox hides."""
    places = [Path("/run/user") / str(os.getuid())]
    places += [Path(os.environ[name]) for name in RUNTIME_ENV_DIRS if os.environ.get(name)]
    return [place for place in dict.fromkeys(places) if place.is_dir()]


@functools.cache
def bwrap_problem() -> str | None:
    """Why bwrap cannot sandbox here (None: it can), found once by trying it."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bwrap is not installed"
    probe = subprocess.run(
        [bwrap, "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net", "--", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode == 0:
        return None
    said = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else f"exit {probe.returncode}"
    return (
        f"bwrap cannot create namespaces here ({said}); where unprivileged user namespaces are "
        "restricted (Ubuntu 24.04: sysctl kernel.apparmor_restrict_unprivileged_userns=0) allow them"
    )


def bwrap_argv(sandbox: SandboxConfig, *, home: Path, runtime: Sequence[Path] = ()) -> list[str]:
    """bwrap's options: later mounts win, so hiding comes first and credential folders and the
    ``runtime`` directories (the daemon's socket) last."""
    args = ["bwrap", "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    if sandbox.tmp == "private":
        args += ["--tmpfs", "/tmp"]
    if str(home) != "/":
        args += ["--tmpfs", str(home)]
    for path in sandbox.read_only:
        args += ["--ro-bind-try", path, path]
    for path in sandbox.paths:
        args += ["--bind-try", path, path]
    for name in CREDENTIAL_DIRS:
        hidden = home / name
        if hidden.is_dir():
            args += ["--tmpfs", str(hidden)]
        elif hidden.exists():
            args += ["--ro-bind", "/dev/null", str(hidden)]
    for place in runtime:
        args += ["--tmpfs", str(place)]
    for name in sandbox.hide:
        hidden = Path(name)
        if hidden.is_dir():
            args += ["--tmpfs", name]
        elif hidden.exists():
            args += ["--ro-bind", "/dev/null", name]
    if not sandbox.network:
        args.append("--unshare-net")
    return args  # the working directory is kept where it is visible (listed, or outside home and /tmp)


def apply_limits(limits: LimitsConfig | None) -> None:
    """In the child before ``exec``: the rlimits the config asks for (inherited by the tree)."""
    if limits is None:
        return
    for which, value in (
        (resource.RLIMIT_DATA, limits.memory_bytes),
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_NPROC, limits.processes),
    ):
        if value is not None:
            resource.setrlimit(which, (value, value))


_WRAPPED_SIGNAL: Final = re.compile(r"exited with code (1[3-9][0-9])\b")


def over_limit(limits: LimitsConfig | None, reason: str) -> str | None:
    """Which limit an exit looks like it hit, for ``ps`` (None: none that we can tell). A
    process under bwrap or a shell that dies of a signal shows as exit code 128 + the signal
    (134: SIGABRT, what node and Python do when an allocation fails under RLIMIT_DATA)."""
    if limits is None:
        return None
    lowered = reason.lower()
    wrapped = _WRAPPED_SIGNAL.search(lowered)
    if wrapped is not None:
        with contextlib.suppress(ValueError):
            lowered += " " + signal.Signals(int(wrapped.group(1)) - 128).name.lower()
    if limits.memory_bytes is not None and any(
        sign in lowered for sign in ("memoryerror", "out of memory", "cannot allocate", "sigsegv", "sigabrt")
    ):
        return f"over its memory limit ({limits.memory})"
    if limits.cpu_seconds is not None and "sigxcpu" in lowered:
        return f"over its CPU limit ({limits.cpu_seconds} s)"
    return None


def hidden_program(
    command: Sequence[str], sandbox: SandboxConfig | None, *, home: Path, path: str
) -> str | None:
    """The program ``command`` starts, if its sandbox hides it (it lives under the home folder,
    which is empty inside, and no listed folder brings it back): the server could not start."""
    if sandbox is None or not sandbox.enabled or not command:
        return None
    found = shutil.which(command[0], path=path)
    if found is None:
        return None
    program = Path(found).absolute()
    inside = [Path(p) for p in (*sandbox.paths, *sandbox.read_only)]
    if not program.is_relative_to(home) or any(program.is_relative_to(folder) for folder in inside):
        return None
    return str(program)


def read_keyring(entries: Mapping[str, str]) -> dict[str, str]:
    """``{VAR: "service/username"}`` looked up in the OS keyring (the ``keyring`` package, the
    ``keyring`` extra); blocking (D-Bus, Keychain): call it off the event loop. A missing
    package or entry stops the start, naming the variable."""
    if not entries:
        return {}
    try:
        import keyring
        import keyring.errors
    except ImportError:
        raise UpstreamStartError(
            "env_keyring needs the keyring package: pip install 'watchgate[keyring]'"
        ) from None
    found: dict[str, str] = {}
    for var, entry in entries.items():
        service, _, username = entry.rpartition("/")
        try:
            secret = keyring.get_password(service, username)
        except keyring.errors.KeyringError as exc:
            raise UpstreamStartError(f"env_keyring.{var}: the keyring failed: {exc}") from None
        if secret is None:
            raise UpstreamStartError(
                f"env_keyring.{var}: no keyring entry for service {service!r}, user {username!r}"
            )
        found[var] = secret
    return found


def read_env_files(files: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments, blank lines, optional quotes, ``export``), read at
    every start so a rotated secret is picked up by a restart; a file that cannot be read
    stops the start, naming it."""
    found: dict[str, str] = {}
    for name in files:
        try:
            text = Path(name).read_text()
        except OSError as exc:
            raise UpstreamStartError(f"cannot read env_files entry {name}: {exc.strerror or exc}") from exc
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, _, value = line.removeprefix("export ").partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            found[key.strip()] = value
    return found
