"""Command splitting, relative paths, ``~`` and ``${VAR}`` expansion."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchgate.config import UpstreamConfig, load_config, parse_config
from watchgate.errors import ConfigError, ConfigProblem


def upstream(*lines: str, base_dir: str | None = "/etc/watchgate") -> UpstreamConfig:
    text = "proxy:\n  upstream:\n" + "".join(f"    {line}\n" for line in lines)
    [result] = parse_config(text, base_dir=base_dir).proxy.upstreams
    return result


def problems(*lines: str) -> list[ConfigProblem]:
    text = "proxy:\n  upstream:\n" + "".join(f"    {line}\n" for line in lines)
    with pytest.raises(ConfigError) as info:
        parse_config(text, base_dir="/etc/watchgate")
    return info.value.problems


# --- command strings ----------------------------------------------------------------------


def test_command_string_is_shlex_split() -> None:
    u = upstream("""command: "python -m mcp_server_time --local-timezone 'Europe/Paris Time'" """)
    assert u.command == ("python", "-m", "mcp_server_time", "--local-timezone", "Europe/Paris Time")


def test_command_list_is_kept_as_given() -> None:
    u = upstream("command: [npx, -y, '@modelcontextprotocol/server-filesystem', 'a b']")
    assert u.command == ("npx", "-y", "@modelcontextprotocol/server-filesystem", "a b")


def test_unbalanced_quote_in_command_string() -> None:
    [problem] = problems("""command: "python 'oops" """)
    assert (problem.path, problem.line) == ("proxy.upstream.command", 3)
    assert problem.message == "cannot split the command string: No closing quotation"


# --- relative paths -----------------------------------------------------------------------


def test_bare_program_names_are_left_for_path_lookup() -> None:
    assert upstream("command: [npx, ./not-a-program-arg]").command == ("npx", "./not-a-program-arg")


def test_relative_program_path_resolves_against_base_dir() -> None:
    u = upstream("command: ./node_mcp/node_modules/.bin/mcp-server-everything stdio")
    assert u.command == ("/etc/watchgate/node_mcp/node_modules/.bin/mcp-server-everything", "stdio")


def test_parent_relative_program_path_is_normalised() -> None:
    assert upstream("command: [../bin/srv]").command == ("/etc/bin/srv",)


def test_absolute_program_path_is_untouched() -> None:
    assert upstream("command: [/usr/bin/python3]").command == ("/usr/bin/python3",)


def test_relative_cwd_resolves_against_base_dir() -> None:
    assert upstream("command: [s]", "cwd: ./data").cwd == "/etc/watchgate/data"
    assert upstream("command: [s]", "cwd: /var/lib").cwd == "/var/lib"


def test_without_base_dir_the_current_directory_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    u = upstream("command: [./srv]", "cwd: work", base_dir=None)
    assert u.command == (str(tmp_path / "srv"),)
    assert u.cwd == str(tmp_path / "work")


def test_relative_base_dir_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert upstream("command: [./srv]", base_dir="conf").command == (str(tmp_path / "conf/srv"),)


# --- ~ and ${VAR} -------------------------------------------------------------------------


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_tilde_expands_in_command_env_and_cwd(home: Path) -> None:
    u = upstream("command: [~/bin/srv, ~/data]", "env: {DATA: ~/d}", "cwd: ~/w")
    assert u.command == (f"{home}/bin/srv", f"{home}/data")
    assert u.env == {"DATA": f"{home}/d"}
    assert u.cwd == f"{home}/w"


def test_tilde_is_not_expanded_in_headers(home: Path) -> None:
    u = upstream("transport: http", "url: http://h/", "headers: {X-Tag: ~me}")
    assert u.headers == {"X-Tag": "~me"}


def test_variables_expand_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WG_ROOT", "/opt/wg")
    monkeypatch.setenv("WG_TOKEN", "s3cret")
    u = upstream(
        "command: ['${WG_ROOT}/bin/srv', '--root=${WG_ROOT}']",
        "env: {PATH_EXTRA: '${WG_ROOT}/bin:${WG_ROOT}/sbin', TOKEN: '${WG_TOKEN}'}",
        "cwd: ${WG_ROOT}/work",
    )
    assert u.command == ("/opt/wg/bin/srv", "--root=/opt/wg")
    assert u.env == {"PATH_EXTRA": "/opt/wg/bin:/opt/wg/sbin", "TOKEN": "s3cret"}
    assert u.cwd == "/opt/wg/work"
    remote = upstream(
        "transport: http",
        "url: https://h/${WG_TOKEN}",
        "headers: {Authorization: 'Bearer ${WG_TOKEN}'}",
    )
    assert remote.url == "https://h/s3cret"
    assert remote.headers == {"Authorization": "Bearer s3cret"}


def test_variable_value_with_spaces_stays_one_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WG_DIR", "/a dir/with spaces")
    assert upstream("command: srv --dir ${WG_DIR}").command == (
        "srv",
        "--dir",
        "/a dir/with spaces",
    )


def test_expanded_relative_program_path_still_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WG_SUB", "tools")
    assert upstream("command: ['./${WG_SUB}/srv']").command == ("/etc/watchgate/tools/srv",)


def test_double_dollar_keeps_a_literal_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WG_UNSET", raising=False)
    u = upstream("command: [sh, -c, 'echo $${WG_UNSET} $HOME $1']")
    assert u.command == ("sh", "-c", "echo ${WG_UNSET} $HOME $1")


def test_unset_variables_are_problems_naming_variable_and_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("WG_A", "WG_B", "WG_C", "WG_D"):
        monkeypatch.delenv(name, raising=False)
    found = problems(
        "command: [srv, '${WG_A}']",
        "env: {KEY: '${WG_B}'}",
        "cwd: ${WG_C}",
    )
    assert [(p.path, p.line) for p in found] == [
        ("proxy.upstream.command[1]", 3),
        ("proxy.upstream.env.KEY", 4),
        ("proxy.upstream.cwd", 5),
    ]
    assert found[0].message == "environment variable 'WG_A' is not set (used as ${WG_A})"
    assert "'WG_B'" in found[1].message
    assert "'WG_C'" in found[2].message
    [url_problem] = problems("transport: http", "url: 'http://${WG_D}/'")
    assert (url_problem.path, url_problem.line) == ("proxy.upstream.url", 4)
    assert "'WG_D'" in url_problem.message


def test_unset_variable_in_command_string_points_at_the_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WG_A", raising=False)
    [problem] = problems("command: srv ${WG_A}")
    assert problem.path == "proxy.upstream.command"


def test_empty_variable_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WG_EMPTY", "")
    assert upstream("command: [srv, 'x${WG_EMPTY}y']").command == ("srv", "xy")


def test_a_server_without_cwd_starts_in_the_config_files_folder(tmp_path: Path) -> None:
    """One rule for `up` and `run`, wherever the command is started from."""
    path = tmp_path / "conf" / "wg.yaml"
    path.parent.mkdir()
    path.write_text(
        "proxy:\n  upstreams:\n    - {name: a, command: [cat]}\n    - {name: b, url: 'https://x.example/mcp', transport: http}\n"
    )
    config = load_config(str(path))
    assert config.proxy.upstreams[0].cwd == str(tmp_path / "conf")
    assert config.proxy.upstreams[1].cwd is None  # remote: no process, no folder
