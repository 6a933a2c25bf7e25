"""load_config / parse_config errors, line numbers and how problems are printed."""

from __future__ import annotations

import logging
import os
import textwrap
from pathlib import Path

import pytest

from watchgate.config import load_config, parse_config
from watchgate.errors import ConfigError, ConfigProblem


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_problems(path: str | Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


def test_load_config_reads_the_file_and_records_its_source(tmp_path: Path) -> None:
    path = write(tmp_path / "supervisor.yaml", "proxy:\n  upstream: {command: [./srv]}\n")
    config = load_config(path)
    assert config.source == str(path)
    assert config.proxy.upstreams[0].command == (str(tmp_path / "srv"),)


def test_load_config_resolves_relative_paths_against_the_file_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf").mkdir()
    write(tmp_path / "conf/w.yaml", "proxy:\n  upstream: {command: [./srv], cwd: data}\n")
    monkeypatch.chdir(tmp_path)
    config = load_config("conf/w.yaml")
    assert config.source == "conf/w.yaml"
    [u] = config.proxy.upstreams
    assert u.command == (str(tmp_path / "conf/srv"),)
    assert u.cwd == str(tmp_path / "conf/data")


def test_missing_file(tmp_path: Path) -> None:
    err = load_problems(tmp_path / "nope.yaml")
    assert err.source == str(tmp_path / "nope.yaml")
    assert [(p.path, p.line, p.message) for p in err.problems] == [("", None, "file not found")]
    assert str(err) == f"{tmp_path / 'nope.yaml'}: file not found"


def test_directory_is_unreadable(tmp_path: Path) -> None:
    [problem] = load_problems(tmp_path).problems
    assert problem.message.startswith("cannot read the file: ")
    assert problem.line is None


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"proxy:\n  upstream: {command: [caf\xe9]}\n")
    [problem] = load_problems(path).problems
    assert problem.message.startswith("not UTF-8 text (")
    assert "byte 33" in problem.message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "empty.yaml", text)
    err = load_problems(path)
    assert [(p.path, p.line) for p in err.problems] == [("", None)]
    assert str(err) == f"{path}: the configuration is empty (it needs at least a 'proxy' section)"


def test_yaml_syntax_error_reports_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bad.yaml",
        """\
        proxy:
          upstream:
            command: [python
            env: {}
        """,
    )
    [problem] = load_problems(path).problems
    assert problem.line == 4
    assert problem.path == ""
    assert problem.message.startswith("YAML syntax error: ")
    assert "flow sequence" in problem.message
    assert str(problem).startswith(f"{path}:4: YAML syntax error: ")


def test_yaml_syntax_error_without_a_file() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("proxy: a: b\n")
    assert str(info.value) == "line 1: YAML syntax error: mapping values are not allowed here"


def test_unsafe_tags_are_refused() -> None:
    with pytest.raises(ConfigError, match="could not determine a constructor"):
        parse_config("proxy: !!python/object/apply:os.system [echo hi]\n")


def test_type_error_has_path_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "supervisor.yaml",
        """\
        proxy:
          upstreams:
            - name: fs
              command: [a]
            - name: git
              command: [b]
              max_restarts: many
        """,
    )
    [problem] = load_problems(path).problems
    assert problem == ConfigProblem(
        "proxy.upstreams[1].max_restarts", 7, 'expected an integer, got "many"', str(path)
    )


def test_all_problems_are_reported_together_in_file_order() -> None:
    text = textwrap.dedent(
        """\
        proxy:
          startup_wait: -1
          upstreams:
            - name: my_server
              command: [a]
              max_restarts: -1
              within_seconds: 0
              comand: x
            - command: [b]
            - name: ok
              transport: http
              url: ftp://x
            - name: ok
              command: [c]
              restart: always
        logging: {level: loud, extra: 1}
        """
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="supervisor.yaml")
    assert str(info.value).splitlines() == [
        "supervisor.yaml:2: proxy.startup_wait: expected a number >= 0.0, got -1",
        "supervisor.yaml:4: proxy.upstreams[0].name: 'my_server' is not a valid server name"
        " (letters, digits and '-', starting with a letter, at most 32)",
        "supervisor.yaml:6: proxy.upstreams[0].max_restarts: expected an integer >= 0, got -1",
        "supervisor.yaml:7: proxy.upstreams[0].within_seconds: expected a number > 0.0, got 0",
        "supervisor.yaml:8: proxy.upstreams[0].comand: unknown key 'comand' (did you mean 'command'?)",
        "supervisor.yaml:9: proxy.upstreams[1].name: a name is required when there is more than one upstream",
        "supervisor.yaml:12: proxy.upstreams[2].url: must start with http:// or https:// when"
        " transport is http, got 'ftp://x'",
        "supervisor.yaml:13: proxy.upstreams[3].name: duplicate server name 'ok'"
        " (also used by proxy.upstreams[2])",
        "supervisor.yaml:15: proxy.upstreams[3].restart: expected one of permanent, temporary,"
        ' transient, got "always"',
        'supervisor.yaml:16: logging.level: expected one of debug, error, info, warning, got "loud"',
        "supervisor.yaml:16: logging.extra: unknown key 'extra' (expected one of: level)",
    ]
    assert info.value.source == "supervisor.yaml"


def test_duplicate_yaml_keys_are_reported() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("proxy:\n  upstream:\n    command: [a]\n    command: [b]\n")
    [problem] = info.value.problems
    assert (problem.path, problem.line) == ("proxy.upstream.command", 4)
    assert problem.message == "duplicate key 'command' (first given at line 3)"


def test_yaml_anchors_and_merge_keys_work() -> None:
    config = parse_config(
        textwrap.dedent(
            """\
            proxy:
              upstreams:
                - &base {name: a, command: [a], restart: transient, max_restarts: 2}
                - {<<: *base, name: b, command: [b], max_restarts: 9}
            """
        )
    )
    a, b = config.proxy.upstreams
    assert (a.name, a.restart, a.max_restarts) == ("a", "transient", 2)
    assert (b.name, b.command, b.restart, b.max_restarts) == ("b", ("b",), "transient", 9)


def test_problem_in_a_merged_value_points_at_the_merging_mapping() -> None:
    text = textwrap.dedent(
        """\
        proxy:
          upstreams:
            - &base {name: a, command: [a]}
            - <<: *base
              name: b
              max_restarts: -3
            - <<: [*base]
              name: c
              restart: never
        """
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert [(p.path, p.line) for p in info.value.problems] == [
        ("proxy.upstreams[1].max_restarts", 6),
        ("proxy.upstreams[2].restart", 9),
    ]


# --- ConfigProblem / ConfigError formatting --------------------------------------------------


@pytest.mark.parametrize(
    ("problem", "text"),
    [
        (ConfigProblem("a.b", 7, "bad", "s.yaml"), "s.yaml:7: a.b: bad"),
        (ConfigProblem("a.b", None, "bad", "s.yaml"), "s.yaml: a.b: bad"),
        (ConfigProblem("a.b", 7, "bad"), "line 7: a.b: bad"),
        (ConfigProblem("a.b", None, "bad"), "a.b: bad"),
        (ConfigProblem("", 3, "bad", "s.yaml"), "s.yaml:3: bad"),
        (ConfigProblem("", None, "bad"), "bad"),
    ],
)
def test_problem_formatting(problem: ConfigProblem, text: str) -> None:
    assert str(problem) == text


def test_error_fills_in_its_source_and_lists_one_problem_per_line() -> None:
    err = ConfigError([ConfigProblem("a", 1, "x"), ConfigProblem("b", 2, "y", "other.yaml")], source="s.yaml")
    assert [p.source for p in err.problems] == ["s.yaml", "other.yaml"]
    assert str(err) == "s.yaml:1: a: x\nother.yaml:2: b: y"
    assert err.source == "s.yaml"


def test_error_without_source() -> None:
    err = ConfigError([ConfigProblem("a", 1, "x")])
    assert err.source is None
    assert err.problems[0].source is None
    assert str(err) == "line 1: a: x"


def test_parse_config_source_appears_in_problems_and_result() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("proxy: {}\n", source="inline.yaml")
    assert str(info.value).startswith("inline.yaml:1: proxy: no upstream servers")
    ok = parse_config("proxy: {upstream: {command: [a]}}\n", source="inline.yaml")
    assert ok.source == "inline.yaml"


def test_pathlike_and_str_paths_are_equivalent(tmp_path: Path) -> None:
    path = write(tmp_path / "s.yaml", "proxy: {upstream: {command: [a]}}\n")
    assert load_config(path) == load_config(os.fspath(path))


def test_command_and_args_the_way_every_mcp_client_writes_them_load_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = "proxy:\n  transport: stdio\n  upstream:\n    command: [npx]\n    args: ['-y', 'server-x']\n"
    with caplog.at_level(logging.DEBUG, logger="watchgate"):
        config = parse_config(text)
        as_a_string = parse_config("proxy:\n  upstream:\n    command: npx\n    args: ['-y', 'a b']\n")
    assert config.proxy.upstreams[0].command == ("npx", "-y", "server-x")
    assert as_a_string.proxy.upstreams[0].command == ("npx", "-y", "a b")
    assert config.proxy.transport == "stdio"
    assert caplog.records == []


def test_args_that_are_not_a_list_of_strings_are_refused_with_their_path() -> None:
    with pytest.raises(ConfigError, match=r"proxy\.upstream\.args: expected a list of strings"):
        parse_config("proxy:\n  upstream:\n    command: [npx]\n    args: -y\n")


def test_a_password_in_an_upstream_url_is_never_shown_and_never_beside_auth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(
            "proxy:\n  upstream:\n    transport: http\n    url: http://admin:pw@127.0.0.1:9/mcp\n"
            "    auth: {type: bearer, token_env: T}\n"
        )
    assert "user:password in it and auth is given too" in str(refused.value) and "pw@" not in str(
        refused.value
    )
    with pytest.raises(ConfigError) as bad:
        parse_config("proxy:\n  upstream:\n    transport: http\n    url: ftp://admin:pw@host/mcp\n")
    assert "ftp://host/mcp" in str(bad.value) and "admin:pw" not in str(bad.value)


def test_a_url_is_shown_without_its_user_and_password() -> None:
    from watchgate.protocol.urls import shown_host, shown_url

    assert shown_url("http://admin:pw@h:8/mcp?x=1") == "http://h:8/mcp?x=1"
    assert shown_host("https://u:p@example.test/mcp") == "example.test"
    assert shown_url("http://h/mcp") == "http://h/mcp"


def test_a_lone_tilde_word_stays_a_word_and_a_home_path_expands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/me")
    config = parse_config(
        "proxy:\n  upstream:\n    command: [srv, '~', '~/notes']\n    env: {A: '~', B: '~/b'}\n"
    )
    upstream = config.proxy.upstreams[0]
    assert upstream.command[1:] == ("~", "/home/me/notes")
    assert upstream.env == {"A": "~", "B": "/home/me/b"}


def test_an_access_rule_names_profiles_and_servers_that_exist() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(
            "proxy:\n  upstream: {command: [x]}\n"
            "access:\n  - {match: {user: ana}, profile: nope, servers: [zz]}\n"
        )
    said = str(refused.value)
    assert (
        "access[0].profile: no profile is called 'nope'" in said and "access[0].servers: no upstream" in said
    )
