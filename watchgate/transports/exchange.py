"""What one HTTP exchange with a remote server carries, apart from the connection that makes it:
bodies read within a bound, a server's ``retry:`` kept within reason, what is known of one
request's event stream, and which message answers which request."""

from __future__ import annotations

import contextlib
from typing import Final

import httpx2
from msgspec import UNSET

from watchgate.errors import JsonRpcError, UpstreamStartError
from watchgate.protocol import jsonrpc
from watchgate.protocol.jsonrpc import Kind
from watchgate.transports.sse import each_event

MAX_ANSWER: Final = 128 * 1024 * 1024  # the same bound as a stdio server's line
MAX_ERROR_BODY: Final = 64 * 1024  # of an HTTP error's body: only its start is ever quoted
GET_RETRY_DELAY: Final = 1.0
MIN_RETRY: Final = 0.5  # a server's `retry:` below this is taken as this (`retry: 0` would spin)
MAX_RETRY: Final = 30.0


class TooLarge(Exception):
    """An answer over the bound: nothing of it is kept."""


async def read_bounded(response: httpx2.Response, limit: int) -> bytes:
    """The body, read as it comes; `TooLarge` past ``limit`` bytes (a huge answer is refused as a
    stdio server's huge line is, not held whole in memory). An error body is cut at ``limit``."""
    chunks: list[bytes] = []
    size = 0
    async with contextlib.aclosing(response.aiter_bytes()) as body:
        async for chunk in body:
            size += len(chunk)
            if size > limit:
                if limit == MAX_ERROR_BODY:
                    chunks.append(chunk[: limit - (size - len(chunk))])
                    break
                raise TooLarge
            chunks.append(chunk)
    return b"".join(chunks)


def retry_delay(retry_ms: int) -> float:
    """A server's SSE ``retry:`` as seconds to wait, within [MIN_RETRY, MAX_RETRY]."""
    return min(MAX_RETRY, max(MIN_RETRY, retry_ms / 1000))


class RequestStream:
    """What is known of one request's SSE stream: whether it has answered, and how to resume it."""

    __slots__ = ("answered", "last_event_id", "request_id", "retry")

    def __init__(self, request_id: int | str | None) -> None:
        self.request_id = request_id
        self.answered = False
        self.last_event_id: str | None = None
        self.retry = GET_RETRY_DELAY


def request_id_of(line: bytes) -> int | str | None:
    """The id of a request (None for anything else: nothing to wait for)."""
    try:
        msg = jsonrpc.decode(line)
    except JsonRpcError:
        return None
    if msg.kind is not Kind.REQUEST or msg.id is UNSET:
        return None
    return msg.id


async def first_message(response: httpx2.Response) -> bytes:
    """The first message of an answer, whether it came as JSON or as an event stream."""
    kind = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "text/event-stream":
        try:
            return await read_bounded(response, MAX_ANSWER)
        except TooLarge:
            raise UpstreamStartError(f"the server's first answer is over {MAX_ANSWER >> 20} MiB") from None
    first: list[bytes] = []

    async def take(event: httpx2.ServerSentEvent) -> bool:
        if event.data:
            first.append(event.data.encode())
        return not first

    await each_event(response, take)
    return first[0] if first else b""


def answers(message: bytes, request_id: int | str | None) -> bool:
    if request_id is None or b'"id"' not in message:
        return False
    try:
        msg = jsonrpc.decode(message)
    except JsonRpcError:
        return False
    return msg.kind is Kind.RESPONSE and msg.id == request_id
