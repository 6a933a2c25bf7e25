"""The command line: clear messages and exit codes, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchgate.cli.main import main

GOOD = """\
proxy:
  upstreams:
    - name: time
      command: [python3, -m, mcp_server_time]
    - name: files
      command: npx -y @modelcontextprotocol/server-filesystem /tmp
"""

BAD = """\
proxy:
  upstreams:
    - name: time
      command: [python3]
    - name: time
      command: [python3]
      max_restarts: lots
"""


def test_validate_accepts_a_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(GOOD)
    assert main(["validate", "-c", str(path)]) == 0
    assert capsys.readouterr().out == "ok: 2 upstream(s) (time, files)\n"


def test_validate_lists_every_problem_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    assert main(["validate", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:5: proxy.upstreams[1].name" in err
    assert f"{path}:7: proxy.upstreams[1].max_restarts" in err
    assert "Traceback" not in err


def test_run_with_a_missing_config_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-c", str(tmp_path / "nope.yaml")]) == 1
    err = capsys.readouterr().err
    assert "nope.yaml" in err and "Traceback" not in err


def test_run_refuses_http_on_an_open_address_without_a_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "http.yaml"
    path.write_text(
        "proxy:\n  transport: http\n  http: {listen: '0.0.0.0:8848'}\n  upstream:\n    command: [x]\n"
    )
    assert main(["run", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("watchgate: refusing to listen on 0.0.0.0:8848") and err.count("\n") == 1


def test_run_with_a_profile_it_does_not_have_or_over_http_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text("proxy:\n  upstream:\n    command: [x]\nprofiles:\n  lean: {tools: {allow: [read*]}}\n")
    assert main(["run", "-c", str(path), "--profile", "fat"]) == 1
    assert capsys.readouterr().err == "watchgate: unknown profile 'fat' (known: lean)\n"
    assert main(["run", "-c", str(path), "--profile", "lean", "--http", "127.0.0.1:0"]) == 1
    assert "over HTTP each client chooses its profile (?profile=NAME)" in capsys.readouterr().err


def test_run_http_wants_host_and_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("proxy:\n  upstream:\n    command: [x]\n")
    with pytest.raises(SystemExit) as exit_:
        main(["run", "-c", str(path), "--http", "8848"])
    assert exit_.value.code == 2
    assert "expected HOST:PORT" in capsys.readouterr().err


def test_a_bad_listen_address_in_the_config_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("proxy:\n  transport: http\n  http: {listen: nowhere}\n  upstream:\n    command: [x]\n")
    assert main(["validate", "-c", str(path)]) == 1
    assert "proxy.http" in capsys.readouterr().err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "run" in capsys.readouterr().err


def test_the_shipped_default_config_validates(capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parents[2]
    assert main(["validate", "-c", str(root / "supervisor.yaml")]) == 0
    assert "(time, everything)" in capsys.readouterr().out


def test_validate_warns_when_two_servers_have_no_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text(
        "proxy:\n  upstreams:\n"
        "    - {name: a, command: [x], prefix: never}\n"
        "    - {name: b, command: [x], prefix: never}\n"
        "    - {name: c, command: [x]}\n"
    )
    assert main(["validate", "-c", str(path)]) == 0
    err = capsys.readouterr().err
    assert "warning: 'a', 'b' have no prefix" in err


def test_validate_refuses_a_token_file_others_can_read_as_run_and_up_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    token.chmod(0o644)
    path = tmp_path / "http.yaml"
    path.write_text(GOOD + f"  transport: http\n  http:\n    token_file: {token}\n")
    assert main(["validate", "-c", str(path)]) == 1
    assert (
        f"error: proxy.http.token_file: {token} may be read by others (mode 644)" in capsys.readouterr().err
    )
    token.chmod(0o600)
    assert main(["validate", "-c", str(path)]) == 0


def test_validate_warns_of_a_program_its_sandbox_hides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    program = home / ".local" / "bin" / "my-server"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    monkeypatch.setenv("HOME", str(home))
    path = tmp_path / "sandboxed.yaml"
    path.write_text(f"proxy:\n  upstream:\n    command: [{program}]\n    sandbox: {{enabled: true}}\n")
    assert main(["validate", "-c", str(path)]) == 0
    err = capsys.readouterr().err
    assert f"warning: 'default' runs {program}, which its sandbox hides" in err
    assert f"add {program.parent} to sandbox.read_only" in err
