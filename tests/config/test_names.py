"""Single-server compatibility and the naming rules of multi-server mode (design.md §4, ADR-014)."""

from __future__ import annotations

import textwrap

import pytest

from watchgate.config import DEFAULT_SINGLE_NAME, SERVER_NAME_RE, parse_config
from watchgate.errors import ConfigError, ConfigProblem


def problems(text: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text))
    return info.value.problems


def upstreams_yaml(*entries: str) -> str:
    return "proxy:\n  upstreams:\n" + "".join(f"    - {entry}\n" for entry in entries)


# --- single-server mode -------------------------------------------------------------------


def test_legacy_upstream_form_is_one_unnamed_server() -> None:
    config = parse_config("proxy:\n  upstream:\n    command: [python, -m, mcp_server_time]\n")
    assert [u.name for u in config.proxy.upstreams] == [DEFAULT_SINGLE_NAME]
    assert config.proxy.upstreams[0].command == ("python", "-m", "mcp_server_time")
    assert config.proxy.multi_server is False


def test_legacy_upstream_form_keeps_a_given_name() -> None:
    config = parse_config("proxy:\n  upstream: {name: clock, command: [python]}\n")
    assert config.proxy.upstreams[0].name == "clock"
    assert config.proxy.multi_server is False


def test_single_entry_upstreams_list_needs_no_name() -> None:
    config = parse_config(upstreams_yaml("command: [python]"))
    assert config.proxy.upstreams[0].name == DEFAULT_SINGLE_NAME
    assert not config.proxy.multi_server


def test_single_server_name_is_still_checked() -> None:
    [problem] = problems("proxy:\n  upstream: {name: my_server, command: [x]}\n")
    assert problem.path == "proxy.upstream.name"
    assert problem.line == 2


def test_upstream_and_upstreams_together_is_an_error() -> None:
    [problem] = problems(
        """\
        proxy:
          upstream: {command: [a]}
          upstreams:
            - command: [b]
        """
    )
    assert problem.path == "proxy.upstream"
    assert problem.line == 2
    assert "not both" in problem.message


# --- multi-server mode ---------------------------------------------------------------------


def test_two_named_upstreams_are_multi_server_in_order() -> None:
    config = parse_config(upstreams_yaml("{name: fs, command: [a]}", "{name: git, command: [b]}"))
    assert [u.name for u in config.proxy.upstreams] == ["fs", "git"]
    assert config.proxy.multi_server is True


def test_every_unnamed_upstream_is_reported_when_there_are_several() -> None:
    found = problems(upstreams_yaml("command: [a]", "{name: git, command: [b]}", "command: [c]"))
    assert [(p.path, p.line) for p in found] == [
        ("proxy.upstreams[0].name", 3),
        ("proxy.upstreams[2].name", 5),
    ]
    assert all(p.message == "a name is required when there is more than one upstream" for p in found)


def test_duplicate_name_is_reported_at_the_second_and_names_the_first() -> None:
    found = problems(
        upstreams_yaml("{name: fs, command: [a]}", "{name: git, command: [b]}", "{name: fs, command: [c]}")
    )
    assert [(p.path, p.line) for p in found] == [("proxy.upstreams[2].name", 5)]
    assert "'fs'" in found[0].message
    assert "proxy.upstreams[0]" in found[0].message


def test_names_are_case_sensitive() -> None:
    config = parse_config(upstreams_yaml("{name: fs, command: [a]}", "{name: FS, command: [b]}"))
    assert [u.name for u in config.proxy.upstreams] == ["fs", "FS"]


@pytest.mark.parametrize(
    "name",
    [
        "my_server",  # one underscore: "<a_b>__tool" could be split wrongly by others' clients
        "fs__tools",  # the namespace separator itself
        "1password",  # a URI scheme must start with a letter
        "-fs",
        "a" * 33,
        "",
        "fs.local",
        "fs+x",
        "f s",
        "fs\n",
        "ünïcode",
    ],
)
def test_invalid_names_are_rejected(name: str) -> None:
    found = problems(
        f'proxy:\n  upstreams:\n    - name: "{name.encode("unicode_escape").decode()}"\n'
        "      command: [a]\n    - {name: other, command: [b]}\n"
    )
    assert [(p.path, p.line) for p in found] == [("proxy.upstreams[0].name", 3)]
    assert found[0].message == (
        f"{name!r} is not a valid server name (letters, digits and '-', starting with a letter, at most 32)"
    )


@pytest.mark.parametrize("name", ["a", "fs", "GitHub", "my-server-2", "a" * 32, "x-"])
def test_valid_names_are_accepted(name: str) -> None:
    config = parse_config(upstreams_yaml(f"{{name: {name}, command: [a]}}", "{name: z, command: [b]}"))
    assert config.proxy.upstreams[0].name == name
    assert SERVER_NAME_RE.match(name)


def test_name_regex_matches_the_design() -> None:
    assert SERVER_NAME_RE.match("fs")
    assert not SERVER_NAME_RE.match("fs_x")
    assert not SERVER_NAME_RE.match("9fs")
    assert not SERVER_NAME_RE.match("fs\n")  # re.match with `$` would accept this


def test_name_of_the_wrong_type_is_a_type_error_not_a_naming_error() -> None:
    found = problems(upstreams_yaml("{name: 7, command: [a]}", "{name: b, command: [b]}"))
    assert [(p.path, p.message) for p in found] == [("proxy.upstreams[0].name", "expected a string, got 7")]


def test_invalid_duplicate_name_is_reported_once() -> None:
    found = problems(upstreams_yaml("{name: a_b, command: [a]}", "{name: a_b, command: [b]}"))
    assert [p.path for p in found] == ["proxy.upstreams[0].name", "proxy.upstreams[1].name"]
    assert all("not a valid server name" in p.message for p in found)
