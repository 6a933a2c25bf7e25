"""Properties of the codec (design.md §12): whatever bytes arrive, decoding raises nothing
but the codec's own JSON-RPC errors, and what it accepts it forwards unchanged."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from watchgate.errors import JsonRpcError
from watchgate.protocol import jsonrpc

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)
IDS = st.integers(min_value=-(2**53), max_value=2**53) | st.text(max_size=20)


def _decode_or_error(line: bytes) -> jsonrpc.Message | JsonRpcError:
    try:
        return jsonrpc.decode(line)
    except JsonRpcError as exc:  # anything else escapes and fails the property
        return exc


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_a_jsonrpc_error(line: bytes) -> None:
    _decode_or_error(line)


@given(JSON)
def test_any_json_value_decodes_or_raises_a_jsonrpc_error(value: Any) -> None:
    _decode_or_error(json.dumps(value).encode())


@settings(max_examples=30)
@given(st.integers(min_value=1, max_value=3000), st.sampled_from(["[", '{"a":']))
def test_nesting_at_any_depth_decodes_or_raises_a_jsonrpc_error(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    nested = opener * depth + "1" + closer * depth
    for line in (nested, f'{{"jsonrpc":"2.0","id":1,"method":"m","params":{{"x":{nested}}}}}'):
        _decode_or_error(line.encode())


@given(IDS, st.text(min_size=1, max_size=30), st.dictionaries(st.text(max_size=8), JSON, max_size=5))
def test_a_request_round_trips_with_its_params_untouched(
    request_id: int | str, method: str, params: dict[str, Any]
) -> None:
    line = msgspec.json.encode({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
    msg = jsonrpc.decode(line)
    assert (msg.id, msg.method) == (request_id, method)
    again = msgspec.json.decode(jsonrpc.encode(msg.with_id(7)))
    assert again == {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    assert jsonrpc.load(msg.params) == params
