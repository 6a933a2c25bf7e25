"""The codec decides what the gateway answers to malformed input, so every branch is a user-visible error."""

import msgspec
import pytest
import trio

from watchgate.errors import JsonRpcError, LineTooLong
from watchgate.protocol import jsonrpc
from watchgate.protocol.jsonrpc import Kind, error_response
from watchgate.wire.framing import LineReader


def test_request_params_pass_through_byte_for_byte() -> None:
    line = b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","z":[1, 2 ,3],"u":"\\u00e9"}}'
    msg = jsonrpc.decode(line)
    assert msg.kind is Kind.REQUEST
    assert msg.id == 7 and msg.method == "tools/call"
    assert bytes(msg.params) == b'{"name":"x","z":[1, 2 ,3],"u":"\\u00e9"}'
    out = jsonrpc.encode(msg.with_id(123))
    assert (
        out
        == b'{"jsonrpc":"2.0","id":123,"method":"tools/call","params":{"name":"x","z":[1, 2 ,3],"u":"\\u00e9"}}'
    )


def test_classifies_notifications_and_responses() -> None:
    assert jsonrpc.decode(b'{"jsonrpc":"2.0","method":"notifications/initialized"}').kind is Kind.NOTIFICATION
    ok = jsonrpc.decode(b'{"jsonrpc":"2.0","id":"a","result":{}}')
    assert ok.kind is Kind.RESPONSE and ok.id == "a" and not ok.is_error
    err = jsonrpc.decode(b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}')
    assert err.kind is Kind.RESPONSE and err.id is None and err.is_error


@pytest.mark.parametrize("line", [b"{not json", b'{"jsonrpc":"2.0","id":1', b"\xff\xfe"])
def test_unparseable_json_is_a_parse_error(line: bytes) -> None:
    with pytest.raises(jsonrpc.ParseError) as info:
        jsonrpc.decode(line)
    assert info.value.code == -32700
    response = msgspec.json.decode(jsonrpc.encode(error_response(None, info.value)))
    assert response["id"] is None and response["error"]["code"] == -32700


@pytest.mark.parametrize(
    ("line", "expected_id", "reason"),
    [
        (b'{"id":1,"method":"ping"}', 1, "jsonrpc"),
        (b'{"jsonrpc":"1.0","id":1,"method":"ping"}', 1, "jsonrpc"),
        (b'{"jsonrpc":"2.0","id":2,"method":5}', 2, "method"),
        (b'{"jsonrpc":"2.0","id":[1],"method":"ping"}', None, "id"),
        (b'{"jsonrpc":"2.0","id":3}', 3, "neither"),
        (b'{"jsonrpc":"2.0","id":4,"method":"x","result":{}}', 4, "both"),
        (b'{"jsonrpc":"2.0","id":5,"result":{},"error":{}}', 5, "both"),
        (b'{"jsonrpc":"2.0","id":null,"method":"ping"}', None, "null"),
        (b'{"jsonrpc":"2.0","result":{}}', None, "id"),
        (b"[1, 2]", None, "batch"),
        (b'"just a string"', None, "object"),
    ],
)
def test_invalid_requests_name_what_was_wrong(line: bytes, expected_id: object, reason: str) -> None:
    with pytest.raises(jsonrpc.InvalidRequest) as info:
        jsonrpc.decode(line)
    assert info.value.code == -32600
    assert info.value.request_id == expected_id
    assert reason in info.value.message


def test_error_response_carries_code_message_and_data() -> None:
    err = jsonrpc.JsonRpcError(-32003, "server 'fs' is not running", {"server": "fs"})
    out = msgspec.json.decode(jsonrpc.encode(error_response("abc", err)))
    assert out == {
        "jsonrpc": "2.0",
        "id": "abc",
        "error": {"code": -32003, "message": "server 'fs' is not running", "data": {"server": "fs"}},
    }


def test_result_and_request_builders() -> None:
    assert (
        jsonrpc.encode(jsonrpc.result_response(1, {"a": 1})) == b'{"jsonrpc":"2.0","id":1,"result":{"a":1}}'
    )
    assert jsonrpc.encode(jsonrpc.request(9, "ping")) == b'{"jsonrpc":"2.0","id":9,"method":"ping"}'
    note = jsonrpc.notification("notifications/cancelled", {"requestId": 3})
    assert (
        jsonrpc.encode(note)
        == b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}'
    )


def test_params_fields_can_be_replaced_without_touching_the_rest() -> None:
    msg = jsonrpc.decode(
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fs__read","arguments":{"p":1}}}'
    )
    fields = jsonrpc.params_fields(msg)
    assert jsonrpc.field_str(fields, "name") == "fs__read"
    assert jsonrpc.field_str(fields, "missing") is None
    fields["name"] = jsonrpc.raw("read")
    out = msg.with_params(jsonrpc.raw_fields(fields))
    assert jsonrpc.encode(out) == (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read","arguments":{"p":1}}}'
    )


def test_params_that_are_not_an_object_are_invalid_params() -> None:
    msg = jsonrpc.decode(b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[1]}')
    with pytest.raises(jsonrpc.JsonRpcError) as info:
        jsonrpc.params_fields(msg)
    assert info.value.code == -32602
    fields = jsonrpc.params_fields(
        jsonrpc.decode(b'{"jsonrpc":"2.0","id":1,"method":"x","params":{"name":3}}')
    )
    with pytest.raises(jsonrpc.JsonRpcError) as info:
        jsonrpc.field_str(fields, "name")
    assert info.value.code == -32602 and "name" in info.value.message


async def test_line_reader_splits_chunks_and_handles_partial_lines() -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    reader = LineReader(receive)
    await send.send_all(b'{"a":1}\n{"b"')
    await send.send_all(b":2}\r\n\n   \n{")
    await send.send_all(b'"c":3}')
    await send.aclose()
    lines = [line async for line in reader]
    assert lines == [b'{"a":1}', b'{"b":2}', b'{"c":3}']


async def test_line_reader_refuses_an_endless_line() -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    reader = LineReader(receive, max_line_bytes=10)
    await send.send_all(b"x" * 11)
    with pytest.raises(LineTooLong):
        async for _ in reader:
            pass


class CountingStream(trio.abc.ReceiveStream):
    """Hands out ``data`` as fast as asked, like a full pipe: each read gets what it asks for."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.reads: list[int] = []

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        assert max_bytes is not None
        self.reads.append(max_bytes)
        chunk, self.data = bytes(self.data[:max_bytes]), self.data[max_bytes:]
        return chunk

    async def aclose(self) -> None:
        pass


async def test_line_reader_reads_a_large_message_in_growing_chunks_then_shrinks_back() -> None:
    big = b'{"jsonrpc":"2.0","id":1,"result":"' + b"x" * 5_000_000 + b'"}\n'
    stream = CountingStream(big + b'{"jsonrpc":"2.0","id":2,"result":1}\n' * 8)
    reader = LineReader(stream)
    assert await reader.receive_line() == big[:-1]
    assert len(stream.reads) < 14  # 5 MB in 64 KiB reads would take 77
    assert max(stream.reads) == 1 << 20
    lines = [await reader.receive_line() for _ in range(8)]
    assert lines[-1] == b'{"jsonrpc":"2.0","id":2,"result":1}'
    for _ in range(5):  # small reads from here on: the read size falls back to 64 KiB
        stream.data = memoryview(b'{"jsonrpc":"2.0","id":3,"result":1}\n')
        await reader.receive_line()
    assert stream.reads[-1] == 65536


def test_a_large_message_is_encoded_with_its_newline_in_one_buffer() -> None:
    payload = msgspec.Raw(b'"' + b"y" * 100_000 + b'"')
    msg = jsonrpc.Message("2.0", id=7, result=payload)
    line = jsonrpc.encode_line(msg)
    assert isinstance(line, bytearray) and bytes(line) == jsonrpc.encode(msg) + b"\n"
    small = jsonrpc.encode_line(jsonrpc.Message("2.0", id=7, result=msgspec.Raw(b"1")))
    assert small == b'{"jsonrpc":"2.0","id":7,"result":1}\n'
    assert jsonrpc.join_lines([line]) is line  # a lone large line is written without a copy
    assert jsonrpc.join_lines([small, small]) == small * 2


def test_a_large_answer_is_written_as_views_that_make_the_same_line() -> None:
    text = b'"' + b"r" * 100_000 + b'"'
    line = b'{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":' + text + b"}]}}"
    msg = jsonrpc.decode(line).with_id("client-7")
    large = jsonrpc.large_answer(msg)
    assert large is not None and isinstance(large.result, memoryview)
    assert b"".join(large) == bytes(jsonrpc.encode_line(msg))
    assert large.result.obj is not None  # a view of the server's bytes, not a copy
    small = jsonrpc.decode(b'{"jsonrpc":"2.0","id":3,"result":{"content":[]}}')
    assert jsonrpc.large_answer(small) is None
    error = jsonrpc.decode(b'{"jsonrpc":"2.0","id":3,"error":{"code":1,"message":"' + b"e" * 70_000 + b'"}}')
    assert jsonrpc.large_answer(error) is None


def test_invalid_utf8_inside_a_raw_member_is_a_parse_error_when_asked() -> None:
    line = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"x":"\xff\xfe"}}'
    assert jsonrpc.decode(line).method == "tools/call"  # servers' lines: passed on as they are
    with pytest.raises(jsonrpc.ParseError, match="invalid UTF-8 at byte 61"):
        jsonrpc.decode(line, check_utf8=True)
    assert jsonrpc.decode('{"jsonrpc":"2.0","id":1,"method":"é"}'.encode(), check_utf8=True).method == "é"


def test_a_message_too_deep_to_decode_is_refused_under_its_own_id() -> None:
    deep = b"[" * 5000 + b"]" * 5000
    cases = [
        (b'{"params":{"id":"inner","x":' + deep + b'},"id":7,"method":"m","jsonrpc":"2.0"}', 7),
        (b'{"id":"a\\\\\\"b","params":' + deep + b',"method":"m","jsonrpc":"2.0"}', 'a\\"b'),
        (b'{"method":"m","params":' + deep + b"}", None),
        (b'{"id":true,"params":' + deep + b"}", None),
    ]
    for line, expected in cases:
        with pytest.raises(jsonrpc.InvalidRequest) as refused:
            jsonrpc.decode(line)
        assert refused.value.request_id == expected
    with pytest.raises(JsonRpcError, match="nested too deeply"):
        jsonrpc.object_fields(msgspec.Raw(b'{"a":' + deep + b"}"), "params of 'm'")
