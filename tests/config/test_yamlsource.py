"""The schema-free layer: YAML positions and msgspec conversion that reports every problem."""

from __future__ import annotations

import datetime
import textwrap
from typing import Literal

import msgspec
import pytest

from watchgate.config.yamlsource import (
    MAX_ISSUES,
    Issue,
    convert,
    join_path,
    load_yaml,
    parent_path,
    show,
    unknown_key_message,
)
from watchgate.errors import YamlSyntaxError


class Inner(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    size: int = 0
    kind: Literal["a", "b"] = "a"


class Outer(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    required: int
    inner: Inner = Inner()
    many: list[Inner] = []
    named: dict[str, Inner] = {}
    labels: dict[str, str] = {}
    maybe: Inner | None = None
    either: list[int] | None = None
    choice: Literal["x", "y"] | None = None


# --- load_yaml ----------------------------------------------------------------------------


def test_lines_of_keys_and_items() -> None:
    doc = load_yaml(
        textwrap.dedent(
            """\
            # comment
            proxy:
              upstreams:
                - name: a
                  command:
                    - x
                    - y
                -
                  name: b
            """
        )
    )
    assert doc.data == {"proxy": {"upstreams": [{"name": "a", "command": ["x", "y"]}, {"name": "b"}]}}
    assert doc.lines == {
        "": 2,
        "proxy": 2,
        "proxy.upstreams": 3,
        "proxy.upstreams[0]": 4,
        "proxy.upstreams[0].name": 4,
        "proxy.upstreams[0].command": 5,
        "proxy.upstreams[0].command[0]": 6,
        "proxy.upstreams[0].command[1]": 7,
        "proxy.upstreams[1]": 9,
        "proxy.upstreams[1].name": 9,
    }
    assert doc.issues == ()


def test_line_for_falls_back_to_the_nearest_written_parent() -> None:
    doc = load_yaml("a:\n  b:\n    - {c: 1}\n")
    assert doc.line_for("a.b[0].c") == 3
    assert doc.line_for("a.b[0].missing.deeper") == 3
    assert doc.line_for("a.b[5]") == 2
    assert doc.line_for("a.zz") == 1
    assert doc.line_for("nothing") == 1
    assert load_yaml("").line_for("a") is None


def test_empty_document() -> None:
    doc = load_yaml("# nothing\n")
    assert (doc.data, doc.lines, doc.issues) == (None, {}, ())


def test_duplicate_keys_are_issues_with_their_own_line() -> None:
    doc = load_yaml("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n")
    assert doc.data == {"a": 3, "b": {"c": 2}}
    assert doc.issues == (
        Issue("b.c", "duplicate key 'c' (first given at line 3)", 4),
        Issue("a", "duplicate key 'a' (first given at line 1)", 5),
    )
    assert doc.lines["a"] == 5  # the value that was kept


def test_merge_keys_are_not_duplicates() -> None:
    doc = load_yaml("base: &b {x: 1}\nuse:\n  <<: *b\n  x: 2\n")
    assert doc.data["use"] == {"x": 2}
    assert doc.issues == ()


def test_recursive_alias_terminates() -> None:
    doc = load_yaml("a: &x [1, *x]\n")
    assert doc.data["a"][1] is doc.data["a"]
    assert doc.lines["a"] == 1


def test_aliased_value_is_indexed_where_defined() -> None:
    doc = load_yaml("a: &x\n  k: 1\nb: *x\n")
    assert doc.lines["a.k"] == 2
    assert "b.k" not in doc.lines
    assert doc.line_for("b.k") == 3


def test_complex_keys_are_refused() -> None:
    with pytest.raises(YamlSyntaxError, match="found unhashable key") as info:
        load_yaml("c: 2\n? [a, b]\n: 1\n")
    assert info.value.line == 2


@pytest.mark.parametrize(
    ("text", "line", "start"),
    [
        ("a: b: c\n", 1, "mapping values are not allowed here"),
        ("a:\n  - [1, 2\n", 3, "expected ',' or ']'"),
        ("a: 1\n---\nb: 2\n", 2, "but found another document (expected a single document"),
        ("a: !!python/name:os.system x\n", 1, "could not determine a constructor"),
        ("\ta: 1\n", 1, "while scanning for the next token: found character '\\t'"),
    ],
)
def test_syntax_errors(text: str, line: int, start: str) -> None:
    with pytest.raises(YamlSyntaxError) as info:
        load_yaml(text)
    assert info.value.line == line
    assert info.value.message.startswith(start)
    assert str(info.value) == info.value.message


def test_control_characters_are_refused_with_their_line() -> None:
    with pytest.raises(YamlSyntaxError) as info:
        load_yaml("a: 1\nb: \x07\n")
    assert info.value.line == 2
    assert info.value.message == ("character #x0007 is not allowed: special characters are not allowed")


# --- helpers ------------------------------------------------------------------------------


def test_path_helpers() -> None:
    assert join_path("", "a") == "a"
    assert join_path("a", "b") == "a.b"
    assert join_path("a", 3) == "a[3]"
    assert join_path("a", ...) == "a[...]"
    assert parent_path("a.b[3].c") == "a.b[3]"
    assert parent_path("a.b[3]") == "a.b"
    assert parent_path("a") == ""


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("x", '"x"'),
        ("é", '"é"'),
        (1, "1"),
        (1.5, "1.5"),
        (True, "true"),
        (None, "null"),
        ({}, "a mapping"),
        ([], "a list"),
        (datetime.date(2024, 1, 2), "date"),
    ],
)
def test_show(value: object, text: str) -> None:
    assert show(value) == text


def test_unknown_key_message() -> None:
    assert unknown_key_message("nmae", ["name", "env"]) == "unknown key 'nmae' (did you mean 'name'?)"
    assert unknown_key_message("zzz", ["name", "env"]) == ("unknown key 'zzz' (expected one of: name, env)")
    assert unknown_key_message(3, ["name"]) == "unknown key 3 (expected one of: name)"
    assert unknown_key_message("x", []) == "unknown key 'x'"


# --- convert -----------------------------------------------------------------------------


def messages(data: object, path: str = "") -> list[tuple[str, str]]:
    result = convert(data, Outer, path=path)
    assert result.value is None or result.issues
    return [(issue.path, issue.message) for issue in result.issues]


def test_convert_success() -> None:
    result = convert({"required": 1, "many": [{"size": 2}]}, Outer)
    assert result.issues == []
    assert result.set_aside == frozenset()
    assert result.value == Outer(required=1, many=[Inner(size=2)])


def test_convert_collects_every_problem_and_keeps_the_rest() -> None:
    data = {"required": 1, "inner": {"size": "big", "kind": "c", "color": 1}, "labels": {"a": 1}}
    result = convert(data, Outer, path="top")
    assert [(i.path, i.message) for i in result.issues] == [
        ("top.inner.size", 'expected an integer, got "big"'),
        ("top.inner.kind", 'expected one of a, b, got "c"'),
        ("top.inner.color", "unknown key 'color' (expected one of: size, kind)"),
        ("top.labels.a", "expected a string, got 1"),
    ]
    assert result.set_aside == {"inner.size", "inner.kind", "inner.color", "labels.a"}
    assert result.value == Outer(required=1)
    assert data["inner"] == {"size": "big", "kind": "c", "color": 1}  # input untouched


def test_convert_reports_problems_in_every_list_item() -> None:
    result = convert({"required": 1, "many": [{"size": 1}, {"size": -1.5}, {"size": "x"}]}, Outer)
    assert [(i.path, i.message) for i in result.issues] == [
        ("many[1].size", "expected an integer, got -1.5"),
        ("many[2].size", 'expected an integer, got "x"'),
    ]
    assert result.set_aside == {"many[1].size", "many[2].size"}


def test_convert_list_element_of_wrong_type() -> None:
    assert messages({"required": 1, "many": [{}, 3, 4]}) == [("many[1]", "expected a mapping, got 3")]


def test_convert_dict_of_structs_names_the_key() -> None:
    data = {"required": 1, "named": {"ok": {}, "bad": {"size": "s"}, "worse": {"kind": 1}}}
    assert messages(data) == [
        ("named.bad.size", 'expected an integer, got "s"'),
        ("named.worse.kind", "expected a string, got 1"),
    ]


def test_convert_non_string_key() -> None:
    assert messages({"required": 1, "labels": {"ok": "v", 5: "v", 6: "w"}}) == [
        ("labels", "invalid key: expected a string, got 5"),
        ("labels", "invalid key: expected a string, got 6"),
    ]


def test_convert_missing_required_field() -> None:
    assert messages({}, "s") == [("s.required", "missing required key 'required'")]


def test_convert_required_field_set_aside_is_not_reported_twice() -> None:
    assert messages({"required": "one"}) == [("required", 'expected an integer, got "one"')]


def test_convert_root_of_the_wrong_type() -> None:
    assert messages("text", "here") == [("here", 'expected a mapping, got "text"')]
    assert messages(["x"]) == [("", "expected a mapping, got a list")]


def test_convert_unions_and_optional_choices() -> None:
    assert messages({"required": 1, "maybe": {"size": "s"}}) == [
        ("maybe.size", 'expected an integer, got "s"')
    ]
    assert messages({"required": 1, "maybe": {"zz": 1}}) == [
        ("maybe.zz", "unknown key 'zz' (expected one of: size, kind)")
    ]
    assert messages({"required": 1, "either": [1, "two"]}) == [
        ("either[1]", 'expected an integer, got "two"')
    ]
    assert messages({"required": 1, "either": 5}) == [("either", "expected a list or null, got 5")]
    assert messages({"required": 1, "choice": "z"}) == [("choice", 'expected one of x, y, got "z"')]


def test_convert_unknown_key_under_a_non_struct_has_no_hint() -> None:
    class Holder(msgspec.Struct, forbid_unknown_fields=True):
        items: dict[str, list[Inner]] = {}

    result = convert({"items": {"k": [{"q": 1}]}}, Holder)
    assert [(i.path, i.message) for i in result.issues] == [
        ("items.k[0].q", "unknown key 'q' (expected one of: size, kind)")
    ]


def test_convert_stops_after_max_issues() -> None:
    class Wide(msgspec.Struct, forbid_unknown_fields=True):
        pass

    result = convert({f"k{i}": i for i in range(MAX_ISSUES + 5)}, Wide)
    assert len(result.issues) == MAX_ISSUES
    assert result.value is None


def test_convert_value_error_in_a_nested_dict_of_dicts() -> None:
    class Deep(msgspec.Struct):
        table: dict[str, dict[str, int]] = {}

    result = convert({"table": {"a": {"x": 1}, "b": {"y": "n"}}}, Deep)
    assert [(i.path, i.message) for i in result.issues] == [("table.b.y", 'expected an integer, got "n"')]


def test_convert_finds_the_bad_entry_even_when_later_fields_are_bad_too() -> None:
    data = {"labels": {"good": "x", "bad": 1}, "required": "r"}
    assert messages(data) == [
        ("labels.bad", "expected a string, got 1"),
        ("required", 'expected an integer, got "r"'),
    ]


def test_convert_non_string_key_in_a_nested_dict() -> None:
    class Deep(msgspec.Struct):
        table: dict[str, dict[str, int]] = {}

    result = convert({"table": {"a": {"x": 1}, "b": {"y": 2, 3: 4}}}, Deep)
    assert [(i.path, i.message) for i in result.issues] == [
        ("table.b", "invalid key: expected a string, got 3")
    ]


def test_convert_steps_through_the_matching_member_of_a_union() -> None:
    class Mixed(msgspec.Struct):
        value: int | list[Inner] = 0

    result = convert({"value": [{"size": 1}, {"sise": 2}]}, Mixed)
    assert [(i.path, i.message) for i in result.issues] == [
        ("value[1].sise", "unknown key 'sise' (did you mean 'size'?)")
    ]
