"""``watchgate auth status | logout | login`` as a person sees them (the login's full flow runs
against the conformance suite's authorization servers: tests/conformance)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from mcp.shared.auth import OAuthToken

from watchgate.cli.main import main
from watchgate.transports.oauth import TokenFile

URL = "https://hosted.example/mcp"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    path = tmp_path / "supervisor.yaml"
    path.write_text(
        "proxy:\n  upstreams:\n"
        f"    - {{name: hosted, transport: http, url: {URL}, auth: {{type: oauth}}}}\n"
        "    - {name: local, command: [cat]}\n"
    )
    return path


def test_status_says_who_is_logged_in_where_and_never_the_token(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["auth", "status", "-c", str(config)]) == 0
    assert capsys.readouterr().out == "hosted: not logged in (watchgate auth login hosted)\n"
    token = OAuthToken(access_token="ghu_secret", expires_in=3600, scope="repo", refresh_token="ghr_secret")
    trio.run(TokenFile(URL).set_tokens, token)
    assert main(["auth", "status", "-c", str(config)]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("hosted: issuer ?, scopes repo, expires in 59 min, refreshable")
    assert "secret" not in shown
    assert main(["auth", "logout", "hosted", "-c", str(config)]) == 0
    assert capsys.readouterr().out == "Logged out of hosted: its tokens are forgotten.\n"
    assert TokenFile(URL).entry() == {}


def test_login_to_a_server_without_oauth_is_one_line(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["auth", "login", "local", "-c", str(config)]) == 1
    assert capsys.readouterr().err == (
        "watchgate: no upstream 'local' with auth: {type: oauth} (those with one: hosted)\n"
    )
