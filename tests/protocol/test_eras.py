"""The 2026-07-28 rules as pure functions (protocol/eras.py)."""

from __future__ import annotations

import pytest

from watchgate.errors import JsonRpcError
from watchgate.protocol import eras, jsonrpc


def test_cache_hints_are_dropped_only_where_there_are_some() -> None:
    plain = jsonrpc.result_response(1, {"content": []})
    assert eras.without_cache_hints(plain) is plain
    hinted = jsonrpc.result_response(1, {"content": [], "ttlMs": 5, "cacheScope": "public"})
    assert jsonrpc.load(eras.without_cache_hints(hinted).result) == {"content": []}
    error = jsonrpc.error_response(1, JsonRpcError(-1, "x"))
    assert eras.without_cache_hints(error) is error


def test_shaped_adds_only_what_is_missing() -> None:
    empty = eras.shaped(jsonrpc.result_response(1, {}), "tools/list")
    assert jsonrpc.load(empty.result) == {"resultType": "complete", "ttlMs": 0, "cacheScope": "private"}
    asked = jsonrpc.result_response(1, {"resultType": "input_required", "requestState": "s"})
    assert eras.shaped(asked, "tools/call") is asked
    call = eras.shaped(jsonrpc.result_response(1, {"content": []}), "tools/call")
    assert jsonrpc.load(call.result) == {"resultType": "complete", "content": []}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        (None, -32602),
        ({"_meta": {}}, -32602),
        ({"_meta": {eras.VERSION_KEY: "2020-01-01", eras.CAPABILITIES_KEY: {}}}, -32022),
        ({"_meta": {eras.VERSION_KEY: "2026-07-28", eras.CAPABILITIES_KEY: []}}, -32602),
    ],
)
def test_check_meta_names_the_rule_broken(params: object, code: int) -> None:
    with pytest.raises(JsonRpcError) as info:
        eras.check_meta(params)  # type: ignore[arg-type]
    assert info.value.code == code
