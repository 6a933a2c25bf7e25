"""JSON-RPC 2.0 framing and codec on msgspec.

The gateway decodes each message exactly once into one envelope whose ``params``, ``result`` and
``error`` stay ``msgspec.Raw``: what the gateway does not need to look at passes through
byte-for-byte, and what it rewrites (an id, a tool name) costs one small re-encode. JSON-RPC has no
tag field, so a message is classified by which members are present; ``UNSET`` tells a missing
``id`` (a notification) from ``"id": null``.
"""

from __future__ import annotations

import enum
from typing import Any, Final, Literal, NamedTuple

import msgspec
from msgspec import UNSET, Raw, UnsetType

from watchgate.errors import InvalidRequest, JsonRpcError, ParseError

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "POLICY_DENIED",
    "REQUEST_TIMEOUT",
    "UPSTREAM_UNAVAILABLE",
    "InvalidRequest",
    "JsonRpcError",
    "Kind",
    "Message",
    "ParseError",
    "RequestId",
    "decode",
    "encode",
]

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
REQUEST_TIMEOUT: Final = -32001
UPSTREAM_UNAVAILABLE: Final = -32003
POLICY_DENIED: Final = -32010

RequestId = int | str


class Kind(enum.Enum):
    REQUEST = "request"
    NOTIFICATION = "notification"
    RESPONSE = "response"


class Message(msgspec.Struct, frozen=True):
    """One JSON-RPC message. Construct with the helpers below, not directly."""

    jsonrpc: Literal["2.0"]
    id: int | str | UnsetType | None = UNSET
    method: str | UnsetType = UNSET
    params: Raw | UnsetType = UNSET
    result: Raw | UnsetType = UNSET
    error: Raw | UnsetType = UNSET

    @property
    def kind(self) -> Kind:
        if self.method is not UNSET:
            return Kind.NOTIFICATION if self.id is UNSET else Kind.REQUEST
        return Kind.RESPONSE

    @property
    def is_error(self) -> bool:
        return self.error is not UNSET

    def with_id(self, new_id: int | str | None) -> Message:
        return msgspec.structs.replace(self, id=new_id)

    def with_params(self, params: Raw) -> Message:
        return msgspec.structs.replace(self, params=params)

    def with_result(self, result: Raw) -> Message:
        return msgspec.structs.replace(self, result=result)


class _IdOnly(msgspec.Struct):
    id: int | str | None = None


_decoder: Final = msgspec.json.Decoder(Message)
_id_decoder: Final = msgspec.json.Decoder(_IdOnly)
_fields_decoder: Final = msgspec.json.Decoder(dict[str, Raw])
_encoder: Final = msgspec.json.Encoder()


def decode(line: bytes, *, check_utf8: bool = False) -> Message:
    """Decode and validate one message; raises ParseError or InvalidRequest (both JsonRpcError).

    ``check_utf8``: refuse invalid UTF-8 anywhere in the line, even inside members kept raw
    (msgspec checks only the strings it decodes); cheap for the ASCII lines of the common case."""
    if check_utf8 and not line.isascii():
        try:
            line.decode()
        except UnicodeDecodeError as exc:
            raise ParseError(f"invalid UTF-8 at byte {exc.start}") from None
    try:
        msg = _decoder.decode(line)
    except msgspec.ValidationError as exc:
        raise _invalid(line, str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ParseError(str(exc)) from None
    except RecursionError:  # msgspec's answer to deep nesting (~1,000 levels), even inside a Raw
        # valid JSON, but no message the gateway will carry: answered under its id, if it has one
        raise InvalidRequest("the message is nested too deeply", _top_level_id(line)) from None
    _check_shape(msg)
    return msg


def _invalid(line: bytes, detail: str) -> InvalidRequest:
    stripped = line.lstrip()
    if stripped.startswith(b"["):
        return InvalidRequest("batch requests are not supported; send one message per line")
    if not stripped.startswith(b"{"):
        return InvalidRequest("a message must be a JSON object")
    try:
        salvaged = _id_decoder.decode(line).id
    except (msgspec.DecodeError, RecursionError):
        salvaged = None
    return InvalidRequest(detail.replace("`$.", "`"), salvaged)


def _top_level_id(line: bytes) -> RequestId | None:
    """The ``id`` of a message too deep for the decoder, found by a scan that does not recurse:
    the value of the key ``id`` at the top level of the object (None if there is none to read),
    so that the client gets its answer instead of waiting for it for ever."""
    depth = 0
    position = 0
    end = len(line)
    while position < end:
        byte = line[position]
        if byte == 0x22:  # a string: a key if it is followed by ':' at the top level
            close = _string_end(line, position)
            if close < 0:
                return None
            if depth == 1 and line[position + 1 : close] == b"id":
                rest = line[close + 1 :].lstrip()
                if rest.startswith(b":"):
                    return _scalar_id(rest[1:].lstrip())
            position = close + 1
            continue
        if byte in b"{[":
            depth += 1
        elif byte in b"}]":
            depth -= 1
        position += 1
    return None


def _string_end(line: bytes, start: int) -> int:
    position = start + 1
    while position < len(line):
        if line[position] == 0x5C:  # a backslash: the next byte is escaped
            position += 2
            continue
        if line[position] == 0x22:
            return position
        position += 1
    return -1


def _scalar_id(text: bytes) -> RequestId | None:
    if text.startswith(b'"'):
        close = _string_end(text, 0)
        token = text[: close + 1] if close > 0 else b""
    else:
        token = text[: next((i for i, b in enumerate(text) if b in b",} \t\r\n"), len(text))]
    try:
        value = msgspec.json.decode(token)
    except msgspec.DecodeError:
        return None
    return (
        value if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)) else None
    )


def _check_shape(msg: Message) -> None:
    has_result = msg.result is not UNSET
    has_error = msg.error is not UNSET
    rid = None if msg.id is UNSET else msg.id
    if msg.method is not UNSET:
        if has_result or has_error:
            raise InvalidRequest("a message has both a method and a result or error", rid)
        if msg.id is None:
            raise InvalidRequest("a request id must be a string or an integer, not null")
        return
    if has_result and has_error:
        raise InvalidRequest("a response has both result and error", rid)
    if not (has_result or has_error):
        raise InvalidRequest("a message has neither a method nor a result or error", rid)
    if msg.id is UNSET:
        raise InvalidRequest("a response without an id")


def encode(msg: Message) -> bytes:
    return _encoder.encode(msg)


_LARGE = 64 * 1024  # payloads from this size are encoded into a presized buffer
Line = bytes | bytearray  # an encoded message and its newline, ready for a stream


def encode_line(msg: Message) -> Line:
    """The message and its newline, as written to a stream.

    A large payload is copied once: straight into a buffer sized for it, newline included,
    instead of encoded and then copied again to add the newline.
    """
    body = msg.result if msg.result is not UNSET else msg.params
    if not isinstance(body, Raw) or len(body) < _LARGE:
        return _encoder.encode(msg) + b"\n"
    buf = bytearray(len(body) + 1024)
    _encoder.encode_into(msg, buf)  # truncates the buffer to the message, keeping its capacity
    buf.append(0x0A)
    return buf


class LargeAnswer(NamedTuple):
    """A response with a large result, as three buffers written one after another: the
    envelope's start, a view of the server's own bytes for the result, the end. Writing it
    copies nothing; the one copy the gateway makes of such a result is joining it out of the
    pipe's chunks (`LineReader`)."""

    head: bytes
    result: memoryview
    tail: bytes


_ZERO = Raw(b"0")


def large_answer(msg: Message) -> LargeAnswer | None:
    """``msg`` as a `LargeAnswer` if it is a response with a result of at least 64 KiB."""
    result = msg.result
    if not isinstance(result, Raw) or len(result) < _LARGE or msg.error is not UNSET:
        return None
    envelope = _encoder.encode(msg.with_result(_ZERO))  # ends '"result":0}': result is the last field set
    return LargeAnswer(envelope[:-2], memoryview(result), b"}\n")


def join_lines(lines: list[Line]) -> Line:
    """One buffer for one write; a lone (possibly large) line is not copied."""
    return lines[0] if len(lines) == 1 else b"".join(lines)


def encode_value(value: Any) -> bytes:
    return _encoder.encode(value)


def raw(value: Any) -> Raw:
    """A Raw holding ``value`` encoded as JSON, to splice into a message."""
    return Raw(_encoder.encode(value))


def request(request_id: RequestId, method: str, params: Any = UNSET) -> Message:
    return Message("2.0", id=request_id, method=method, params=_as_raw(params))


def notification(method: str, params: Any = UNSET) -> Message:
    return Message("2.0", method=method, params=_as_raw(params))


def result_response(request_id: int | str | None, result: Any) -> Message:
    return Message("2.0", id=request_id, result=_as_raw(result))


def error_response(request_id: int | str | None, error: JsonRpcError) -> Message:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.data is not None:
        body["data"] = error.data
    return Message("2.0", id=request_id, error=raw(body))


def _as_raw(value: Any) -> Raw | UnsetType:
    if value is UNSET or isinstance(value, Raw):
        return value
    return raw(value)


def params_fields(msg: Message) -> dict[str, Raw]:
    """The top level of ``params`` with every value still raw: rewrite one key, keep the rest."""
    if msg.params is UNSET:
        return {}
    return object_fields(msg.params, f"params of {msg.method!r}")


def object_fields(value: Raw, what: str) -> dict[str, Raw]:
    """The top level of a raw JSON object; anything else is invalid params naming ``what``."""
    try:
        return _fields_decoder.decode(value)
    except msgspec.DecodeError:
        raise JsonRpcError(INVALID_PARAMS, f"{what} must be an object") from None
    except RecursionError:  # a codec helper raises nothing but the protocol's own errors
        raise JsonRpcError(INVALID_PARAMS, f"{what} is nested too deeply") from None


def raw_fields(fields: dict[str, Raw]) -> Raw:
    return Raw(_encoder.encode(fields))


def field_str(fields: dict[str, Raw], key: str) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    try:
        return msgspec.json.decode(value, type=str)
    except msgspec.DecodeError:
        raise JsonRpcError(INVALID_PARAMS, f"params.{key} must be a string") from None


def load(value: Raw | UnsetType) -> Any:
    """Decode a raw member into Python objects (only where the gateway must look inside)."""
    if value is UNSET:
        return None
    return msgspec.json.decode(value)


def error_code(msg: Message) -> int | None:
    """The code of an error response (None for a result; -32603 for an error without one)."""
    if not msg.is_error:
        return None
    body = load(msg.error)
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else INTERNAL_ERROR


#: ``params._meta`` key a transport adds to a server's request that arrived on the stream of one
#: of the gateway's requests (Streamable HTTP): the gateway's id of that request. The gateway
#: reads it to know whose call the question belongs to, and removes it before a client sees it.
RELATED: Final = "watchgate/related"
_RELATED_MARK: Final = RELATED.encode()


def with_related(line: bytes, request_id: RequestId) -> bytes:
    """``line`` marked as asked during ``request_id`` if it is a request (else as it is)."""
    try:
        msg = decode(line)
    except JsonRpcError:
        return line
    if msg.kind is not Kind.REQUEST:
        return line
    try:
        params = load(msg.params) if msg.params is not UNSET else {}
    except msgspec.DecodeError:
        return line
    if not isinstance(params, dict):
        return line
    meta = params.get("_meta")
    params["_meta"] = {**(meta if isinstance(meta, dict) else {}), RELATED: request_id}
    return encode(msg.with_params(raw(params)))


def pop_related(msg: Message) -> tuple[Message, RequestId | None]:
    """The gateway's id a server's request was related to (`with_related`), and the request
    without the mark; (msg, None) when it carries none."""
    if msg.params is UNSET or _RELATED_MARK not in bytes(msg.params):
        return msg, None
    params = load(msg.params)
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict) or RELATED not in meta:
        return msg, None
    related = meta.pop(RELATED)
    if not meta:
        del params["_meta"]
    return msg.with_params(raw(params)), related if isinstance(related, int | str) else None
