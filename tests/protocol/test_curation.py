"""The tool manager's rules on one server's lists and on the names clients use."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from watchgate.config.schema import ItemRules, ResourceRules
from watchgate.protocol import jsonrpc
from watchgate.protocol.curation import Curation


def items(*entries: dict[str, Any]) -> list[dict[str, msgspec.Raw]]:
    return [{k: jsonrpc.raw(v) for k, v in entry.items()} for entry in entries]


def plain(listed: list[dict[str, msgspec.Raw]]) -> list[dict[str, Any]]:
    return [{k: msgspec.json.decode(v) for k, v in item.items()} for item in listed]


def curation(**tools: Any) -> Curation:
    return Curation(ItemRules(**tools), ItemRules(), ResourceRules(), server="fs")


def test_hidden_renamed_and_described_in_the_list_and_back() -> None:
    rules = curation(deny=("delete_*",), rename={"read": "read_file"}, describe={"read": "Reads one file."})
    tools = items(
        {"name": "read", "description": "r", "inputSchema": {}},
        {"name": "write"},
        {"name": "delete_all"},
        {"title": "no name"},
    )
    assert plain(rules.items("tools", tools)) == [
        {"name": "read_file", "description": "Reads one file.", "inputSchema": {}},
        {"name": "write"},
        {"title": "no name"},  # nothing to judge it by: left as it is
    ]
    assert rules.own_name("tools", "read_file") == "read"
    assert rules.own_name("tools", "write") == "write"
    assert rules.own_name("tools", "read") is None  # renamed away: only the new name works
    assert rules.own_name("tools", "delete_all") is None  # denied: as if it did not exist
    assert rules.own_name("prompts", "read") == "read"  # the rules are per kind


def test_allow_keeps_only_matches_and_deny_wins() -> None:
    rules = curation(allow=("get_*", "list_*"), deny=("get_secret",))
    tools = items({"name": "get_issue"}, {"name": "get_secret"}, {"name": "list_repos"}, {"name": "push"})
    assert [t["name"] for t in plain(rules.items("tools", tools))] == ["get_issue", "list_repos"]
    assert rules.own_name("tools", "push") is None
    assert rules.own_name("tools", "get_secret") is None


def test_a_rename_onto_a_name_the_server_uses_hides_that_one() -> None:
    rules = curation(rename={"search_v2": "search"})
    tools = items({"name": "search"}, {"name": "search_v2", "description": "new"})
    assert plain(rules.items("tools", tools)) == [{"name": "search", "description": "new"}]
    assert rules.own_name("tools", "search") == "search_v2"
    swap = curation(rename={"a": "b", "b": "a"})
    assert [t["name"] for t in plain(swap.items("tools", items({"name": "a"}, {"name": "b"})))] == ["b", "a"]
    assert swap.own_name("tools", "a") == "b"


def test_resources_are_hidden_by_uri_and_templates_by_deny_only() -> None:
    rules = Curation(
        ItemRules(),
        ItemRules(),
        ResourceRules(allow=("file:///project/*",), deny=("*.env",), describe={"file:///project/a": "A."}),
        server="fs",
    )
    listed = rules.items(
        "resources",
        items({"uri": "file:///project/a"}, {"uri": "file:///project/.env"}, {"uri": "file:///etc/passwd"}),
    )
    assert plain(listed) == [{"uri": "file:///project/a", "description": "A."}]
    templates = items({"uriTemplate": "file:///{path}"}, {"uriTemplate": "file:///{name}.env"})
    assert [t["uriTemplate"] for t in plain(rules.items("resourceTemplates", templates))] == [
        "file:///{path}"
    ]
    assert rules.allows_uri("file:///project/a") and not rules.allows_uri("file:///etc/passwd")


@pytest.mark.parametrize(
    "spelling",
    ["SECRET://vault/x", "Secret://vault/x", "%73ecret://vault/x", "secret://VAULT/x", "secret://vault/%78"],
)
def test_a_hidden_uri_is_hidden_in_every_spelling_a_server_may_read_as_it(spelling: str) -> None:
    hidden = Curation(ItemRules(), ItemRules(), ResourceRules(deny=("secret://vault/x", "*.env")), server="s")
    assert hidden.allows_uri("secret://vault/y") and not hidden.allows_uri(spelling)
    for env in ("file://localhost/srv/.env", "file:///srv/%2Eenv", "FILE:///srv/.env"):
        assert not hidden.allows_uri(env)
    narrow = Curation(ItemRules(), ItemRules(), ResourceRules(allow=("file:///project/*",)), server="s")
    assert narrow.allows_uri("file:///project/a%20b") and not narrow.allows_uri("file:///project/%2E%2E/etc")


def test_no_rules_change_nothing() -> None:
    rules = curation()
    tools = items({"name": "read"})
    assert rules.items("tools", tools) is tools
    assert rules.own_name("tools", "anything") == "anything" and rules.allows_uri("x://y")


@pytest.mark.parametrize(
    ("rename", "reason"),
    [
        ({"a": "has space"}, "not a valid name"),
        ({"a": "x", "b": "x"}, "both renamed to 'x'"),
    ],
)
def test_bad_renames_are_config_errors(rename: dict[str, str], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        ItemRules(rename=rename)
