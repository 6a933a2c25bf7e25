"""Ctrl-C ends every command quietly: exit status 130, no traceback on the terminal, and the daemon
untouched. Each command runs on a pseudo-terminal, as a person runs it, and gets the SIGINT a
terminal sends on Ctrl-C once it has printed something."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from tests.audit.helpers import write_log
from tests.integration.conftest import TIME, WATCHGATE, upstream
from tests.integration.test_daemon import running_daemon

pytestmark = pytest.mark.integration


async def _interrupted(argv: list[str], env: dict[str, str], *, after: bytes) -> tuple[int, str]:
    """Run ``argv`` on a pty, press Ctrl-C once ``after`` shows; its status and its screen."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # a shell that starts a job in the background (`cmd &` without job control) makes it
        # and everything it starts ignore SIGINT: the command would rightly ignore Ctrl-C too
        pytest.skip("SIGINT is ignored in this process tree (started in the background by a shell)")
    controller, terminal = os.openpty()
    process = await trio.lowlevel.open_process(
        argv, env=env, stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True
    )
    os.close(terminal)
    screen = b""
    try:
        with trio.fail_after(30):
            while after not in screen:
                await trio.lowlevel.wait_readable(controller)
                screen += os.read(controller, 65536)
            os.kill(process.pid, signal.SIGINT)
            while True:
                await trio.lowlevel.wait_readable(controller)
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # EIO: the terminal's last writer is gone
                    break
                if not chunk:
                    break
                screen += chunk
            await process.wait()
    except trio.TooSlowError:  # say what hung: the command, its screen, who still runs
        tree = await trio.run_process(["ps", "-eo", "pid,ppid,stat,etime,args"], capture_stdout=True)
        raise AssertionError(f"{argv} did not end: screen {screen!r}\n{tree.stdout.decode()}") from None
    finally:
        os.close(controller)
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, screen.decode(errors="replace")


async def test_ctrl_c_on_a_following_command_is_quiet(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config(upstream("time", TIME))
    async with running_daemon(config) as daemon:
        for argv, shown in (
            (["logs", "time", "-f"], b"started"),
            (["ps", "--watch"], b"NAME"),
        ):
            code, screen = await _interrupted([WATCHGATE, *argv], daemon.env, after=shown)
            assert "Traceback" not in screen and code == 130, (argv, screen)
        assert (await daemon.upstream("time"))["state"] == "running"  # the daemon did not notice
        log = tmp_path / "audit.jsonl"
        write_log(log, 2)
        code, screen = await _interrupted(
            [WATCHGATE, "audit", "tail", "-f", str(log)], daemon.env, after=b"\n"
        )
        assert "Traceback" not in screen and code == 130, screen
