"""The runtime directory is ours or we refuse it (design.md §12): a planted directory or
symlink must never receive root's pid file, log or socket."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from watchgate.cli.main import main
from watchgate.daemon import paths as paths_module
from watchgate.daemon.paths import RUNTIME_ENV, RuntimePaths, find_daemon, open_private, runtime_paths
from watchgate.errors import RuntimeDirUnsafe


def test_a_fresh_directory_is_created_0700(tmp_path: Path) -> None:
    paths = RuntimePaths(tmp_path / "run" / "watchgate")
    paths.ensure()
    assert stat.S_IMODE(os.lstat(paths.directory).st_mode) == 0o700


def test_a_symlinked_runtime_directory_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir(mode=0o700)
    (tmp_path / "run").symlink_to(real)
    with pytest.raises(RuntimeDirUnsafe, match="is a symlink"):
        RuntimePaths(tmp_path / "run").ensure()


def test_a_directory_others_can_reach_is_refused(tmp_path: Path) -> None:
    loose = tmp_path / "run"
    loose.mkdir()
    os.chmod(loose, 0o755)
    with pytest.raises(RuntimeDirUnsafe, match=r"mode 0755.*\(chmod 700"):
        RuntimePaths(loose).ensure()


def test_a_directory_another_user_owns_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)  # the tests run as root: nobody's directory
    with pytest.raises(RuntimeDirUnsafe, match="owned by uid 65534"):
        RuntimePaths(theirs).ensure()
    parent = tmp_path / "xdg"
    parent.mkdir(mode=0o777)
    os.chmod(parent, 0o777)  # a world-writable parent without the sticky bit: ours can be swapped
    with pytest.raises(RuntimeDirUnsafe, match="writable by others"):
        RuntimePaths(parent / "watchgate").ensure()


def test_pid_and_log_files_are_never_opened_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "root-owned-file"
    target.write_text("precious")
    (tmp_path / "watchgate.pid").symlink_to(target)
    with pytest.raises(RuntimeDirUnsafe, match="symlink"):
        open_private(tmp_path / "watchgate.pid", append=False)
    assert target.read_text() == "precious"


def test_commands_refuse_a_planted_runtime_directory_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    monkeypatch.setenv(RUNTIME_ENV, str(theirs))
    for command in (["ps"], ["attach", "--no-start"], ["down"]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert err.startswith("watchgate: refusing the runtime directory") and err.count("\n") == 1


def _config(tmp_path: Path) -> str:
    path = tmp_path / "wg.yaml"
    path.write_text("proxy:\n  upstreams:\n    - {name: a, command: [cat]}\n")
    return str(path)


def test_up_explains_a_socket_path_too_long_or_taken_by_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    long_dir = tmp_path / ("x" * 120)
    monkeypatch.setenv(RUNTIME_ENV, str(long_dir))
    assert main(["up", "--foreground", "-c", _config(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "more than a Unix socket allows" in err and err.count("\n") == 1

    taken = tmp_path / "run"
    (taken / "control.sock").mkdir(parents=True)
    os.chmod(taken, 0o700)
    monkeypatch.setenv(RUNTIME_ENV, str(taken))
    assert main(["up", "--foreground", "-c", _config(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == f"watchgate: {taken}/control.sock exists and is not a socket; remove it if nothing else needs it\n"
    )


def _fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.delenv(RUNTIME_ENV, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(paths_module, "RUN_USER", tmp_path / "run-user")
    return home


def test_the_runtime_directory_does_not_follow_xdg_runtime_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon started from a desktop shell (XDG_RUNTIME_DIR set) and an attach launched by a
    client that filters the environment (no XDG_RUNTIME_DIR) must choose the same place."""
    home = _fresh_home(tmp_path, monkeypatch)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    with_xdg = runtime_paths()
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert runtime_paths() == with_xdg == RuntimePaths(home / ".watchgate" / "run")

    user_dir = tmp_path / "run-user" / str(os.getuid())
    user_dir.mkdir(parents=True, mode=0o700)  # logind's /run/user/<uid>: taken whenever it is ours
    assert runtime_paths() == RuntimePaths(user_dir / "watchgate")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    assert runtime_paths() == RuntimePaths(user_dir / "watchgate")
    os.chown(user_dir, 65534, 65534)  # someone else's: not ours to use
    assert runtime_paths() == RuntimePaths(home / ".watchgate" / "run")


def test_clients_find_a_daemon_wherever_this_user_runs_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fresh_home(tmp_path, monkeypatch)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "x"))
    assert find_daemon() == runtime_paths()  # none runs: where one would start
    older = RuntimePaths(tmp_path / "x" / "watchgate")  # an earlier version's daemon, under XDG
    older.ensure()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listening:
        listening.bind(str(older.socket))
        listening.listen()
        assert find_daemon() == older
    assert find_daemon() == runtime_paths()  # its socket left behind, nobody answers: not a daemon
