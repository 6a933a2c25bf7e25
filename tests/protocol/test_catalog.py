"""The list cache answers every */list; what it merges is what clients see and what routes back."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from watchgate.errors import JsonRpcError
from watchgate.protocol import jsonrpc
from watchgate.protocol.catalog import Catalog, decode_page, wants


def _items(*items: dict[str, Any]) -> list[dict[str, msgspec.Raw]]:
    return [{key: jsonrpc.raw(value) for key, value in item.items()} for item in items]


def _result(catalog: Catalog, key: str) -> Any:
    return msgspec.json.decode(catalog.result(key))


def test_merge_renames_the_identifying_member_in_config_order() -> None:
    catalog = Catalog(multi_server=True, servers=["b", "a"])
    catalog.update("a", {"tools": _items({"name": "x", "description": "from a"})})
    catalog.update("b", {"tools": _items({"name": "x", "inputSchema": {"type": "object"}})})
    catalog.update("a", {"resources": _items({"uri": "file:///r", "name": "r"})})
    catalog.update("a", {"resourceTemplates": _items({"uriTemplate": "t://{id}", "name": "t"})})
    assert _result(catalog, "tools") == {
        "tools": [
            {"name": "b__x", "inputSchema": {"type": "object"}},
            {"name": "a__x", "description": "from a"},
        ]
    }
    assert _result(catalog, "resources") == {"resources": [{"uri": "a+file:///r", "name": "r"}]}
    assert _result(catalog, "resourceTemplates") == {
        "resourceTemplates": [{"uriTemplate": "a+t://{id}", "name": "t"}]
    }
    assert _result(catalog, "prompts") == {"prompts": []}
    assert catalog.table.resolve_tool("a__x") == ("a", "x")


def test_single_server_mode_passes_items_unchanged() -> None:
    catalog = Catalog(multi_server=False, servers=["only"])
    catalog.update("only", {"tools": _items({"name": "x"}, {"description": "no name"})})
    assert _result(catalog, "tools") == {"tools": [{"name": "x"}, {"description": "no name"}]}


def test_item_without_its_identifying_member_is_skipped_in_multi_mode() -> None:
    catalog = Catalog(multi_server=True, servers=["a", "b"])
    catalog.update("a", {"tools": _items({"description": "nameless"}, {"name": "ok"})})
    assert _result(catalog, "tools") == {"tools": [{"name": "a__ok"}]}
    assert catalog.count("a", "tools") == 2


def test_update_reports_only_kinds_that_changed() -> None:
    catalog = Catalog(multi_server=True, servers=["a", "b"])
    assert catalog.update("a", {"tools": _items({"name": "x"}), "prompts": []}) == ["tools"]
    assert catalog.update("a", {"tools": _items({"name": "x"})}) == []
    assert catalog.update("a", {"tools": _items({"name": "y"})}) == ["tools"]
    assert _result(catalog, "tools") == {"tools": [{"name": "a__y"}]}


def test_merged_answer_is_cached_until_a_change() -> None:
    catalog = Catalog(multi_server=True, servers=["a", "b"])
    catalog.update("a", {"tools": _items({"name": "x"})})
    first = catalog.result("tools")
    assert catalog.result("tools") is first
    catalog.update("b", {"tools": _items({"name": "z"})})
    assert catalog.result("tools") is not first


def test_drop_forgets_a_server_and_reports_what_it_had() -> None:
    catalog = Catalog(multi_server=True, servers=["a", "b"])
    catalog.update("a", {"tools": _items({"name": "x"}), "prompts": _items({"name": "p"}), "resources": []})
    assert catalog.table.resolve_prompt("a__p") == ("a", "p")
    assert sorted(catalog.drop("a")) == ["prompts", "tools"]
    assert _result(catalog, "tools") == {"tools": []}
    assert catalog.count("a", "tools") == 0
    assert catalog.drop("a") == []


def test_decode_page_returns_items_and_cursor() -> None:
    items, cursor = decode_page(jsonrpc.raw({"tools": [{"name": "a"}], "nextCursor": "c2"}), "tools")
    assert [msgspec.json.decode(i["name"]) for i in items] == ["a"] and cursor == "c2"
    assert decode_page(jsonrpc.raw({"tools": [], "nextCursor": ""}), "tools") == ([], None)
    assert decode_page(jsonrpc.raw({}), "prompts") == ([], None)


def test_decode_page_leaves_out_items_whose_name_is_not_a_string() -> None:
    page = {"tools": [{"name": 5}, {"name": "ok"}, {"description": "nameless"}]}
    items, _ = decode_page(jsonrpc.raw(page), "tools")
    assert [sorted(i) for i in items] == [["name"], ["description"]]
    assert bytes(items[0]["name"]) == b'"ok"'


def test_decode_page_rejects_what_is_not_a_list_result() -> None:
    with pytest.raises(JsonRpcError, match="the tools list result must be an object"):
        decode_page(jsonrpc.raw([1]), "tools")
    with pytest.raises(JsonRpcError, match="nextCursor must be a string"):
        decode_page(jsonrpc.raw({"tools": [], "nextCursor": 3}), "tools")
    with pytest.raises(msgspec.ValidationError):
        decode_page(jsonrpc.raw({"tools": {"name": "x"}}), "tools")


def test_wants_follows_the_server_capabilities() -> None:
    caps = {"tools": {}, "resources": {"subscribe": True}}
    assert [k for k in ("tools", "prompts", "resources", "resourceTemplates") if wants(caps, k)] == [
        "tools",
        "resources",
        "resourceTemplates",
    ]
