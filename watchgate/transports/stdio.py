"""Child processes for stdio upstreams: spawn, capture stderr, and always reap.

Each upstream runs in its own session (process group), so shutting it down reaches the whole
tree (``npx`` starts ``node``, which may start more): close stdin and wait, then SIGTERM the
group and wait, then SIGKILL the group, and always ``wait()`` so no zombie is left behind.
stderr is drained continuously (a full 64 KiB pipe would block the child) into a ring buffer
that ``ps`` and error messages quote.

A descendant may leave the group (``setsid``) or outlive its parent, so each server's tree is
also marked: every process started for it inherits ``WATCHGATE_UPSTREAM=<token>`` in its
environment, and shutdown kills whatever still carries the token (design.md §12). The
gateway is a child subreaper, so such orphans become its children and are reaped here, and each
server gets SIGKILL from the kernel if the gateway dies (``PR_SET_PDEATHSIG``, ``kill -9``).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import itertools
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import trio

from watchgate.errors import UpstreamStartError
from watchgate.protocol.jsonrpc import Line
from watchgate.sanitize import clean
from watchgate.transports.facts import ConnectionFacts, Ending
from watchgate.transports.sandbox import (
    apply_limits,
    bwrap_problem,
    confine,
    over_limit,
    read_env_files,
    read_keyring,
)
from watchgate.wire.lines import Bursts, LineChannel
from watchgate.wire.pipes import eager_receive, eager_send, widen_pipes

if TYPE_CHECKING:
    from watchgate.config.schema import LimitsConfig, SandboxConfig, UpstreamConfig

STDERR_LINES = 200
MARK_ENV = "WATCHGATE_UPSTREAM"
# What a server gets of the gateway's environment unless the config names more (design.md §12):
# enough to find programs and a home, never the daemon's credentials.
MINIMAL_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TMPDIR", "USER", "LOGNAME")
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_DUMPABLE = 4
_tokens = itertools.count(1)
_log = logging.getLogger("watchgate.process")


def _prctl(option: int, value: int) -> None:
    if sys.platform == "linux":  # elsewhere the process group is the only handle on the tree
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def become_subreaper() -> None:
    """Orphaned descendants of our servers become our children (so they can be found and
    reaped); and the gateway becomes undumpable: a server running as the same user (unsandboxed)
    can no longer read ``/proc/<gateway>/environ`` or ``mem``, where the secrets of every other
    server are. (A server's own exec makes it dumpable again: this is the gateway's alone.)"""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    _prctl(_PR_SET_DUMPABLE, 0)


def _in_child(parent: int, limits: LimitsConfig | None) -> None:
    """In the child before exec: SIGKILL when the gateway dies, even by ``kill -9``; rlimits."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the gateway died before the line above
        os._exit(1)
    apply_limits(limits)


def _processes() -> Iterator[Path]:
    """The /proc entry of every process (one may be gone by the time it is read)."""
    return (entry for entry in Path("/proc").iterdir() if entry.name.isdigit())


def marked_processes(token: str) -> list[int]:
    """Every process whose environment carries ``token`` (ours only: others' environ is unreadable)."""
    needle = f"\0{MARK_ENV}={token}\0".encode()
    found = []
    for entry in _processes():
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours
            if needle in b"\0" + (entry / "environ").read_bytes() + b"\0":
                found.append(int(entry.name))
    return found


def reap_orphans() -> None:
    """Collect the exit status of adopted orphans (children we did not start), so none stays a
    zombie; the servers we started are reaped by their own `Child.wait`."""
    me = str(os.getpid())
    for entry in _processes():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] == "Z" and int(entry.name) not in _started:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(int(entry.name), os.WNOHANG)


_started: set[int] = set()  # the pids a Child waits for: never reaped behind its back


class StdioProcess:
    def __init__(
        self,
        server: str,
        process: Child,
        token: str = "",
        *,
        sandbox: str = "-",
        limits: LimitsConfig | None = None,
    ) -> None:
        self.server = server
        self._process = process
        self._token = token
        self.sandbox = sandbox  # what ps shows: "-", "bwrap", "bwrap net:off", "UNSANDBOXED"
        self.stderr_closed = trio.Event()  # its last words are in stderr_tail
        self._limits = limits
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        assert process.stdin is not None and process.stdout is not None
        self._stdin = eager_send(process.stdin)
        self._channel = LineChannel(self._stdin, eager_receive(process.stdout))

    # the message seam (transports/base.py), over the pipes
    async def send(self, lines: Sequence[Line]) -> None:
        """The lines in one write (a lone line is not copied)."""
        await self._channel.send(lines[0] if len(lines) == 1 else b"".join(lines))

    @property
    def fast_path(self) -> LineChannel:
        return self._channel

    def receive(self) -> Bursts:
        return self._channel.receive()

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    async def wait(self) -> int:
        return await self._process.wait()

    def ending(self) -> Ending:
        """'exited with code 3' / 'killed by SIGKILL', plus the last stderr line (and the limit
        the sandbox blames, where one explains it)."""
        code = self._process.returncode
        kind: Literal["exited", "killed", "gone"]
        if code is None:
            kind, reason = "gone", "closed its stdout"
        elif code < 0:
            kind, reason = "killed", f"killed by {signal.Signals(-code).name}"
        else:
            kind, reason = "exited", f"exited with code {code}"
        last = next((line for line in reversed(self.stderr_tail) if line.strip()), None)
        described = f"{reason}; stderr: {last}" if last else reason
        limit = over_limit(self._limits, described) if code is not None and code != 0 else None
        return Ending(kind, f"{limit}: {described}" if limit else described, code)

    def describe(self) -> ConnectionFacts:
        return ConnectionFacts(sandbox=self.sandbox)

    async def pump_side(self, on_burst: object) -> None:
        """One process, one era."""

    async def drained(self) -> None:
        await self.stderr_closed.wait()

    def relay_input(self, request_id: int | str, capabilities: dict[str, Any]) -> None:
        """A server on stdio is spoken to in the initialize era: its questions are requests."""

    def legacy_client(self, request_id: int | str) -> None:
        """Every request goes in the initialize era already."""

    async def pump_stderr(self, on_line: Callable[[str], None] | None = None) -> None:
        """Drain stderr into the ring buffer, the log and ``on_line`` until the child closes it."""
        stream = self._process.stderr
        assert stream is not None
        logger = logging.getLogger(f"watchgate.upstream.{self.server}")
        try:
            await self._pump(stream, logger, on_line)
        finally:
            self.stderr_closed.set()

    async def _pump(
        self, stream: trio.abc.ReceiveStream, logger: logging.Logger, on_line: Callable[[str], None] | None
    ) -> None:
        pending = b""
        while chunk := await stream.receive_some(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                text = clean(line.decode("utf-8", "replace").rstrip("\r"))  # shown in ps, logs, audit
                self.stderr_tail.append(text)
                logger.info("[%s] stderr: %s", self.server, text)
                if on_line is not None:
                    on_line(text)
        if pending:
            self.stderr_tail.append(clean(pending.decode("utf-8", "replace")))

    async def shutdown(self, step_timeout: float) -> None:
        """Close stdin, then SIGTERM, then SIGKILL the process group; always reap."""
        with trio.CancelScope(shield=True):
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self._stdin.aclose()
            for sig in (None, signal.SIGTERM, signal.SIGKILL):
                if sig is not None:
                    self._signal_group(sig)
                with trio.move_on_after(step_timeout if sig != signal.SIGKILL else 30):
                    await self._process.wait()
                    break
            # the group may outlive its leader (a shell's children): make sure none is left
            self._signal_group(signal.SIGKILL)
            self.kill_descendants()

    def kill_descendants(self) -> None:
        """SIGKILL whatever was started for this server and still runs (``setsid`` ones too)."""
        if not self._token:
            return
        for pid in marked_processes(self._token):
            if pid != self._process.pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        reap_orphans()

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
            os.killpg(self._process.pid, sig)


class Child:
    """A child process spawned from the event loop's own thread, with trio streams on its pipes.

    Not ``trio.lowlevel.open_process``: trio forks in a worker thread, and the parent-death
    signal (``PR_SET_PDEATHSIG``) fires when the *thread* that forked exits, so every server
    died of SIGKILL when that idle worker retired. Forking here blocks the loop for the
    fork+exec (about a millisecond), once per server start. Its end is awaited on a pidfd.
    """

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid
        pipes = [pipe for pipe in (popen.stdin, popen.stdout, popen.stderr) if pipe is not None]
        self.stdin, self.stdout, self.stderr = (trio.lowlevel.FdStream(os.dup(p.fileno())) for p in pipes)
        for pipe in pipes:
            pipe.close()

    async def aclose(self) -> None:
        """Close our ends of its pipes (after it has been reaped)."""
        for stream in (self.stdin, self.stdout, self.stderr):
            await stream.aclose()

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    async def wait(self) -> int:
        if self._popen.returncode is None:
            pidfd = os.pidfd_open(self.pid)
            try:
                await trio.lowlevel.wait_readable(pidfd)
            finally:
                os.close(pidfd)
        return self._popen.wait()  # it has ended: this reaps it without blocking


def stdio_connector(config: UpstreamConfig) -> AbstractAsyncContextManager[StdioProcess]:
    """The connector for ``transport: stdio`` upstreams."""
    return open_stdio_process(
        config.name,
        config.command,
        env=config.env,
        env_files=config.env_files,
        env_keyring=config.env_keyring,
        pass_env=config.pass_env,
        cwd=config.cwd,
        shutdown_timeout=config.shutdown_timeout,
        sandbox=config.sandbox,
        limits=config.limits,
    )


@asynccontextmanager
async def open_stdio_process(
    server: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    env_files: Sequence[str] = (),
    env_keyring: Mapping[str, str] | None = None,
    pass_env: Sequence[str] = (),
    cwd: str | None = None,
    shutdown_timeout: float = 5.0,
    sandbox: SandboxConfig | None = None,
    limits: LimitsConfig | None = None,
) -> AsyncIterator[StdioProcess]:
    """Spawn ``argv`` with piped stdio; on exit from the block, shut it down and reap it.

    The child's environment: the minimal set and ``pass_env`` taken from ours, then what
    ``env_files`` say, then ``env``. ``sandbox`` and ``limits``: see sandbox.py."""
    token = f"{os.getpid()}.{next(_tokens)}"
    inherited = {name: os.environ[name] for name in (*MINIMAL_ENV, *pass_env) if name in os.environ}
    from_keyring = await trio.to_thread.run_sync(read_keyring, env_keyring or {}) if env_keyring else {}
    full_env = {**inherited, **read_env_files(env_files), **from_keyring, **(env or {}), MARK_ENV: token}
    if sandbox is not None and sandbox.enabled:
        await trio.to_thread.run_sync(bwrap_problem)  # probed once, off the event loop
    confined = confine(argv, sandbox)
    if confined.label == "UNSANDBOXED":
        _log.warning("[%s] runs UNSANDBOXED (sandbox.required: false): %s", server, bwrap_problem())
    become_subreaper()
    try:
        process = Child(
            subprocess.Popen(  # noqa: ASYNC220 - in this thread on purpose (see Child)
                confined.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=full_env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=partial(_in_child, os.getpid(), limits),
            )
        )
    except OSError as exc:
        raise UpstreamStartError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from exc
    _started.add(process.pid)
    widen_pipes(process.stdin, process.stdout)
    child = StdioProcess(server, process, token, sandbox=confined.label, limits=limits)
    _log.info("[%s] started pid %d: %s", server, process.pid, " ".join(argv))
    try:
        yield child
    finally:
        await child.shutdown(shutdown_timeout)
        _started.discard(process.pid)
        with trio.CancelScope(shield=True):
            await process.aclose()
