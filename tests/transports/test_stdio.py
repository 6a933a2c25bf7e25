"""Child processes are always reaped, the whole group with them; stderr is kept for error messages."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import pytest
import trio

from tests.transports.helpers import first_line, read_lines
from watchgate.errors import UpstreamStartError
from watchgate.transports.stdio import MINIMAL_ENV, open_stdio_process


def _gone(pid: int) -> bool:
    """Not running: no such process, or a zombie waiting for init (not ours to reap)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


async def test_closing_stdin_is_enough_for_a_polite_child() -> None:
    async with open_stdio_process("cat", ["cat"], shutdown_timeout=5) as proc:
        await proc.send([b"hello\n"])
        line = await first_line(proc)
        assert line == b"hello"
    assert proc.returncode == 0
    assert str(proc.ending()) == "exited with code 0"


async def test_a_child_ignoring_sigterm_is_killed_and_its_group_too() -> None:
    script = 'trap "" TERM; sleep 600 & echo $!; while :; do sleep 0.05; done'
    with trio.fail_after(20):
        async with open_stdio_process("stubborn", ["sh", "-c", script], shutdown_timeout=0.2) as proc:
            grandchild = int(await first_line(proc) or b"0")
            leader = proc.pid
    assert proc.returncode == -9
    assert str(proc.ending()) == "killed by SIGKILL"
    assert _gone(leader)
    with trio.fail_after(5):
        while not _gone(grandchild):
            await trio.sleep(0.01)


async def test_stderr_is_captured_and_quoted_in_the_exit_reason() -> None:
    code = "import sys; sys.stderr.write('warming up\\nfatal: no token\\n\\n'); sys.exit(4)"
    async with (
        open_stdio_process("talker", [sys.executable, "-c", code], shutdown_timeout=5) as proc,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(proc.pump_stderr)
        await proc.wait()
    assert list(proc.stderr_tail)[:2] == ["warming up", "fatal: no token"]
    assert str(proc.ending()) == "exited with code 4; stderr: fatal: no token"


async def test_a_missing_command_is_a_clear_start_error() -> None:
    with pytest.raises(UpstreamStartError) as info:
        async with open_stdio_process("ghost", ["/nonexistent/ghost-server"]):
            pass  # pragma: no cover - never reached
    assert "cannot start '/nonexistent/ghost-server'" in str(info.value)
    assert "No such file or directory" in str(info.value)


async def test_env_and_cwd_reach_the_child(tmp_path: Path) -> None:
    code = "import os; print(os.environ['WG_TEST'], os.getcwd())"
    async with open_stdio_process(
        "env", [sys.executable, "-c", code], env={"WG_TEST": "yes"}, cwd=str(tmp_path)
    ) as proc:
        line = await first_line(proc)
    assert line is not None and line.decode() == f"yes {os.path.realpath(tmp_path)}"


@pytest.mark.skipif(not hasattr(__import__("fcntl"), "F_GETPIPE_SZ"), reason="pipe sizes are Linux-only")
async def test_a_servers_pipes_are_widened_to_a_mebibyte() -> None:
    import fcntl

    async with open_stdio_process("wide", [sys.executable, "-c", "import sys; sys.stdin.read()"]) as child:
        pipes = child._process  # the Child under the transport: its own pipe streams
        for stream in (pipes.stdin, pipes.stdout):
            assert fcntl.fcntl(stream.fileno(), fcntl.F_GETPIPE_SZ) == 1 << 20  # type: ignore[attr-defined]


async def test_stderr_is_kept_with_secrets_redacted_and_controls_escaped() -> None:
    code = (
        "import sys; sys.stderr.write('\\x1b[31mfatal: token ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8\\n');"
        " sys.exit(2)"
    )
    async with (
        open_stdio_process("leaky", [sys.executable, "-c", code], shutdown_timeout=5) as proc,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(proc.pump_stderr)
        await proc.wait()
    assert list(proc.stderr_tail) == ["\\x1b[31mfatal: token [REDACTED:github_token]"]
    assert str(proc.ending()) == "exited with code 2; stderr: \\x1b[31mfatal: token [REDACTED:github_token]"


async def test_a_server_gets_a_minimal_environment_plus_what_the_config_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "daemon-only")
    monkeypatch.setenv("GITHUB_TOKEN", "passed-on-purpose")
    async with open_stdio_process(
        "env", ["env"], env={"MODE": "test"}, pass_env=("GITHUB_TOKEN", "NOT_SET_ANYWHERE")
    ) as proc:
        seen = dict(
            line.split("=", 1)
            for line in b"\n".join(await read_lines(proc)).decode().splitlines()
            if "=" in line
        )
    assert "AWS_SECRET_ACCESS_KEY" not in seen
    assert seen["GITHUB_TOKEN"] == "passed-on-purpose" and seen["MODE"] == "test"
    assert seen["PATH"] == os.environ["PATH"] and seen["HOME"] == os.environ["HOME"]
    assert "NOT_SET_ANYWHERE" not in seen
    assert set(seen) <= {*MINIMAL_ENV, "GITHUB_TOKEN", "MODE", "WATCHGATE_UPSTREAM"}


async def test_a_server_outlives_the_thread_that_started_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """PR_SET_PDEATHSIG fires when the *thread* that forked exits: a server forked in one of
    trio's worker threads died of SIGKILL when that idle thread retired (after 10 s)."""
    import trio._core._thread_cache as thread_cache

    monkeypatch.setattr(thread_cache, "IDLE_TIMEOUT", 0.05)  # idle worker threads retire at once
    async with open_stdio_process("cat", ["cat"], shutdown_timeout=5) as proc:
        for _ in range(4):  # give any worker thread time to retire, and trio reasons to start more
            await trio.to_thread.run_sync(lambda: None)
            await trio.sleep(0.2)
        await proc.send([b"still alive\n"])
        with trio.fail_after(5):
            assert await first_line(proc) == b"still alive"
    assert proc.returncode == 0


async def test_a_gateway_that_starts_servers_is_undumpable() -> None:
    """An unsandboxed server runs as the same user: it must not read the gateway's memory or
    environment (/proc/<pid>/environ), where every other server's secrets are."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    async with open_stdio_process("cat", ["cat"], shutdown_timeout=5) as process:
        await process.send([b"hello\n"])
        assert await first_line(process) == b"hello"
        assert prctl(3, 0, 0, 0, 0) == 0  # PR_GET_DUMPABLE in this process: off
