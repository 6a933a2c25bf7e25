"""The sandbox's rules without running bwrap: the mounts it asks for, the limits, env files."""

from __future__ import annotations

import stat
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend

from tests.transports.helpers import read_lines
from watchgate.config import LimitsConfig, SandboxConfig
from watchgate.errors import UpstreamStartError
from watchgate.transports import sandbox as sandbox_module
from watchgate.transports.sandbox import bwrap_argv, hidden_program, over_limit, read_env_files, read_keyring
from watchgate.transports.stdio import open_stdio_process


def test_credentials_are_hidden_after_the_listed_folders(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".netrc").write_text("machine x password y")
    args = bwrap_argv(SandboxConfig(enabled=True, paths=(str(home),), network=False, tmp="shared"), home=home)
    assert args.index("--bind-try") < args.index(str(home / ".ssh"))  # hidden after home is bound
    assert args[args.index(str(home / ".ssh")) - 1] == "--tmpfs"
    assert args[args.index(str(home / ".netrc")) - 2 : args.index(str(home / ".netrc"))] == [
        "--ro-bind",
        "/dev/null",
    ]
    assert "--unshare-net" in args
    assert "/tmp" not in args  # tmp: shared


def test_an_exit_is_blamed_on_the_limit_it_looks_like() -> None:
    limits = LimitsConfig(memory="64M", cpu_seconds=5)
    assert over_limit(limits, "exited with code 1; stderr: MemoryError") == "over its memory limit (64M)"
    assert over_limit(limits, "killed by SIGXCPU") == "over its CPU limit (5 s)"
    assert over_limit(limits, "exited with code 2; stderr: usage") is None
    assert over_limit(None, "killed by SIGXCPU") is None
    # under bwrap (or a shell) a signal is an exit code of 128 + the signal
    assert over_limit(limits, "exited with code 134") == "over its memory limit (64M)"  # SIGABRT
    assert over_limit(limits, "exited with code 152") == "over its CPU limit (5 s)"  # SIGXCPU
    assert over_limit(limits, "exited with code 199") is None  # no such signal
    assert over_limit(LimitsConfig(cpu_seconds=5), "exited with code 134") is None  # no memory limit


def test_a_program_the_sandbox_hides_is_named(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "bin").mkdir(parents=True)
    program = home / "bin" / "server"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    on = SandboxConfig(enabled=True)
    path = f"{home / 'bin'}:/usr/bin"
    assert hidden_program(["server"], on, home=home, path=path) == str(program)
    assert hidden_program([str(program)], on, home=home, path=path) == str(program)
    assert (
        hidden_program(
            ["server"], SandboxConfig(enabled=True, read_only=(str(home / "bin"),)), home=home, path=path
        )
        is None
    )
    assert hidden_program(["sh"], on, home=home, path=path) is None  # outside home: visible
    assert hidden_program(["server"], SandboxConfig(enabled=False), home=home, path=path) is None


def test_env_files_are_read_with_comments_quotes_and_export(tmp_path: Path) -> None:
    env = tmp_path / "server.env"
    env.write_text("# a comment\n\nexport TOKEN='abc def'\nPLAIN=1\nQUOTED=\"x\"\nnot a line\n")
    assert read_env_files([str(env)]) == {"TOKEN": "abc def", "PLAIN": "1", "QUOTED": "x"}
    with pytest.raises(UpstreamStartError, match=r"cannot read env_files entry .*missing\.env"):
        read_env_files([str(tmp_path / "missing.env")])


def test_a_bwrap_that_cannot_create_namespaces_is_named_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(sandbox_module.shutil, "which", lambda name: str(fake))
    sandbox_module.bwrap_problem.cache_clear()
    try:
        problem = sandbox_module.bwrap_problem()
        assert problem is not None and problem.startswith(
            "bwrap cannot create namespaces here (bwrap: setting up uid map: Permission denied)"
        )
        assert "kernel.apparmor_restrict_unprivileged_userns=0" in problem
    finally:
        sandbox_module.bwrap_problem.cache_clear()


async def test_limits_and_env_files_reach_the_process(tmp_path: Path) -> None:
    env = tmp_path / "server.env"
    env.write_text("FROM_FILE=yes\nOVERRIDDEN=file\n")
    script = 'ulimit -n; echo "$FROM_FILE $OVERRIDDEN"'
    async with open_stdio_process(
        "limited",
        ["sh", "-c", script],
        env={"OVERRIDDEN": "env"},
        env_files=[str(env)],
        limits=LimitsConfig(open_files=64),
    ) as proc:
        lines = await read_lines(proc)
    assert lines[:2] == [b"64", b"yes env"]


class MemoryKeyring(KeyringBackend):
    """An OS keyring stand-in: the tests never touch the machine's real one."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.entries.pop((service, username), None)


async def test_secrets_come_from_the_os_keyring_at_every_start() -> None:
    previous = keyring.get_keyring()
    memory = MemoryKeyring()
    memory.set_password("github.com/api", "me", "ghp_from_the_keyring")
    keyring.set_keyring(memory)
    try:
        entries = {"GITHUB_TOKEN": "github.com/api/me"}
        async with open_stdio_process("k", ["sh", "-c", 'echo "$GITHUB_TOKEN"'], env_keyring=entries) as proc:
            lines = await read_lines(proc)
        assert lines == [b"ghp_from_the_keyring"]
        with pytest.raises(
            UpstreamStartError, match=r"env_keyring\.NOPE: no keyring entry for service 'x', user 'y'"
        ):
            read_keyring({"NOPE": "x/y"})
    finally:
        keyring.set_keyring(previous)
