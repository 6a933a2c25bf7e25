"""One HTTP/1.1 connection: h11 parses, trio streams carry the bytes, an ASGI app answers.

h11 is sans-IO (as wsproto is under trio-websocket): it turns received bytes into events and
events into bytes; this module only moves bytes between it and the stream, with the limits a
listener on a network owes its other clients:

- a request's head must arrive within ``HEAD_TIMEOUT`` of its first byte and hold at most
  ``MAX_HEAD`` bytes, its body within the body timeout of its head (else 408 / 431), a
  kept-alive connection with no request is closed after ``IDLE_TIMEOUT``: a slow or silent
  client holds one socket for a bounded time;
- malformed requests get h11's status (400, 501, …) and the connection is closed;
- ``Expect: 100-continue`` is honoured when the app first asks for the body (an app that refuses
  first never makes the client send it);
- once the body has been read, the app's next ``receive()`` waits for the client to go: its
  ``http.disconnect`` is how a stream ends and how a 2026-07-28 request is cancelled. Bytes of a
  pipelined next request are kept (up to ``MAX_HEAD``) for after the answer.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import unquote

import h11
import trio

__all__ = ["HEAD_TIMEOUT", "IDLE_TIMEOUT", "MAX_HEAD", "App", "ClientDisconnected", "Connection"]

HEAD_TIMEOUT: Final = 10.0  # seconds from a request's first byte to the end of its head
BODY_TIMEOUT: Final = 10.0  # seconds from the end of a request's head to the end of its body
IDLE_TIMEOUT: Final = 5.0  # seconds a kept-alive connection may wait for its next request
MAX_HEAD: Final = 64 * 1024  # bytes of request line and headers
MAX_DISCARD: Final = 1024 * 1024  # bytes of an unread body read past to keep a connection
_READ: Final = 65536
_log = logging.getLogger("watchgate.http")

Message = MutableMapping[str, Any]
App = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]
_DISCONNECT: Final[Message] = {"type": "http.disconnect"}


class ClientDisconnected(OSError):
    """``send()`` after the client went away (ASGI asks for an OSError subclass)."""


class _Date:
    """The ``Date`` header, formatted once a second rather than once a response."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self._second:
            self._second, self._value = second, email.utils.formatdate(second, usegmt=True).encode()
        return self._value


_date = _Date()


class Connection:
    def __init__(
        self,
        stream: trio.abc.Stream,
        app: App,
        *,
        scheme: str,
        server: tuple[str, int] | None,
        client: tuple[str, int] | None,
        stopping: Callable[[], bool],
        body_timeout: float = BODY_TIMEOUT,
    ) -> None:
        self._stream = stream
        self._app = app
        self._scheme = scheme
        self._server = server
        self._client = client
        self._stopping = stopping  # the listener is shutting down: no next request
        self.body_timeout = body_timeout
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self._gone = False  # the client closed its side (or the socket broke)
        self.idle = True  # waiting for a request: shutdown may close it at once
        self._waiting = trio.CancelScope()
        self._head_started = False  # a byte of the next request has come

    async def serve(self) -> None:
        """Requests one after another until either side closes the connection."""
        try:
            while not self._stopping():
                request = None
                self._head_started = bool(self._h11.trailing_data[0])  # pipelined: already here
                timeout = HEAD_TIMEOUT if self._head_started else IDLE_TIMEOUT
                # one scope: the idle or head deadline, and shutdown's close_now
                with trio.CancelScope(deadline=trio.current_time() + timeout) as self._waiting:
                    request = await self._next_request()
                if self._waiting.cancelled_caught and self._head_started and not self._stopping():
                    await self._refuse(408, "the request's head did not arrive in time")
                if request is None:
                    return
                self.idle = False
                exchange = _Exchange(self, request)
                await exchange.run()
                if self._h11.their_state is h11.SEND_BODY and self._h11.our_state is h11.DONE:
                    if exchange.body_withheld:
                        return  # the client waits for a 100 Continue it will not get: no body comes
                    await self._discard_body()
                self.idle = True
                if self._h11.our_state is not h11.DONE or self._h11.their_state is not h11.DONE:
                    return  # closing (or the app left the body unread): the connection ends
                self._h11.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, ClientDisconnected):
            return
        finally:
            await trio.aclose_forcefully(self._stream)

    async def _discard_body(self) -> None:
        """The app answered without reading the body (a refusal): read the rest and drop it, so
        the client's next request can use this connection, unless the body is large or slow."""
        left = MAX_DISCARD
        with trio.move_on_after(HEAD_TIMEOUT):
            while left > 0:
                try:
                    event = self._h11.next_event()
                except h11.RemoteProtocolError:
                    return
                if isinstance(event, h11.Data):
                    left -= len(event.data)
                elif event is h11.NEED_DATA:
                    data = await self._receive()
                    self._h11.receive_data(data)
                else:  # EndOfMessage (their side is DONE) or the connection closed
                    return

    def close_now(self) -> None:
        """Shutdown: a connection waiting for its next request ends at once."""
        self._waiting.cancel()

    async def _next_request(self) -> h11.Request | None:
        """The next request's head, or None once the connection should close (the client left,
        or its request was refused here). Runs in ``_waiting``, whose deadline it moves from
        the idle time to the head's time once the head has begun and is not whole (a head that
        comes in one read, the rule, costs no change of deadline)."""
        head_timed = self._head_started  # pipelined: serve() gave it the head's time already
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                await self._refuse(exc.error_status_hint, str(exc))
                return None
            if isinstance(event, h11.Request):
                # h11 bounds a head still arriving; one that came whole is measured here
                if len(event.target) + sum(len(k) + len(v) for k, v in event.headers) > MAX_HEAD:
                    await self._refuse(431, "the request's head is too large")
                    return None
                return event
            if event is not h11.NEED_DATA:  # ConnectionClosed (or PAUSED: cannot happen here)
                return None
            if self._head_started and not head_timed:  # begun, not whole: HEAD_TIMEOUT from now
                self._waiting.deadline = trio.current_time() + HEAD_TIMEOUT
                head_timed = True
            data = await self._receive()
            self._head_started = True
            self._h11.receive_data(data)

    async def _receive(self) -> bytes:
        try:
            data = await self._stream.receive_some(_READ)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            self._gone = True
        return data if isinstance(data, bytes) else bytes(data)  # an SSLStream's may be a bytearray

    async def write(self, data: bytes) -> None:
        if self._gone:
            raise ClientDisconnected("the client has gone")
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._gone = True
            raise ClientDisconnected("the client has gone") from exc

    async def _refuse(self, status: int, reason: str) -> None:
        """A status the app never saw (malformed, too large, too slow); the connection closes."""
        if self._h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = reason.encode()
        headers = [
            ("content-type", "text/plain"),
            ("content-length", str(len(body))),
            ("connection", "close"),
        ]
        try:
            data = self._h11.send(h11.Response(status_code=status, headers=headers))
            await self.write((data or b"") + (self._h11.send(h11.Data(data=body)) or b""))
            await self.write(self._h11.send(h11.EndOfMessage()) or b"")
        except (h11.LocalProtocolError, ClientDisconnected):
            return

    def scope(self, request: h11.Request) -> Message:
        target = request.target
        path, _, query = target.partition(b"?")
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": request.http_version.decode(),
            "method": request.method.decode("ascii"),
            "scheme": self._scheme,
            "path": unquote(path.decode("latin-1")),
            "raw_path": path,
            "query_string": query,
            "root_path": "",
            "headers": list(request.headers),
            "client": self._client,
            "server": self._server,
        }


class _Exchange:
    """One request and its answer: the ASGI ``receive`` and ``send`` of that request."""

    def __init__(self, connection: Connection, request: h11.Request) -> None:
        self._conn = connection
        self._h11 = connection._h11
        self._scope = connection.scope(request)
        self._status: int | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._started = False  # the head is written
        self._complete = False  # the whole response is written
        self._body_done = False
        self._body_deadline = trio.current_time() + connection.body_timeout
        #: the client asked to be told to send its body, and has not been (yet)
        self.body_withheld = self._h11.they_are_waiting_for_100_continue

    async def run(self) -> None:
        try:
            await self._conn._app(self._scope, self.receive, self.send)
        except ClientDisconnected:
            return
        except Exception:
            _log.exception("the HTTP listener's application failed on %s", self._scope["path"])
            if not self._started:
                await self._conn._refuse(500, "internal error")
                return
        if not self._complete and not self._conn._gone:
            if self._started:  # a response left half-written cannot be finished honestly
                self._conn._gone = True
            else:
                await self._conn._refuse(500, "the application did not answer")

    async def receive(self) -> Message:
        if self._complete or self._conn._gone:
            return _DISCONNECT
        if self._body_done:
            return await self._wait_for_disconnect()
        if self.body_withheld:
            self.body_withheld = False
            interim = h11.InformationalResponse(status_code=100, headers=[])
            await self._conn.write(self._h11.send(interim) or b"")
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError:
                self._conn._gone = True  # a malformed body: the answer cannot be read either
                return _DISCONNECT
            if isinstance(event, h11.Data):
                return self._chunk(bytes(event.data))
            if isinstance(event, h11.EndOfMessage):
                self._body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if event is h11.NEED_DATA:
                with trio.move_on_at(self._body_deadline):  # only a body still on its way waits
                    data = await self._conn._receive()
                    if not data and self._complete:
                        return _DISCONNECT
                    self._h11.receive_data(data)
                    continue
                await self._conn._refuse(408, "the request's body did not arrive in time")
                self._conn._gone = True  # what the app still sends goes nowhere: the connection ends
                return _DISCONNECT
            self._conn._gone = True  # ConnectionClosed before the body ended
            return _DISCONNECT

    def _chunk(self, body: bytes) -> Message:
        """``body`` with whatever else of it h11 already holds: a body that arrived whole is one
        ``http.request`` message, not one for its bytes and another for its end."""
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError:
                self._conn._gone = True
                event = h11.NEED_DATA  # the bytes so far are the app's; the next receive ends it
            if isinstance(event, h11.Data):
                body += event.data
                continue
            self._body_done = isinstance(event, h11.EndOfMessage)
            if not self._body_done and event is not h11.NEED_DATA:
                self._conn._gone = True  # the connection closed mid-body
            return {"type": "http.request", "body": body, "more_body": not self._body_done}

    async def _wait_for_disconnect(self) -> Message:
        """The body is read: the next thing the client can do is go away (or pipeline a request,
        which waits in h11's buffer until this one is answered)."""
        while not self._conn._gone and not self._complete:
            if len(self._h11.trailing_data[0]) >= MAX_HEAD:
                await trio.sleep_forever()  # no more buffering; the answer ends this
            data = await self._conn._receive()
            if data:
                self._h11.receive_data(data)
        return _DISCONNECT

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self._status is not None:
                raise RuntimeError("http.response.start sent twice")
            self._status = int(message["status"])
            self._headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", ())]
            return
        if kind != "http.response.body" or self._status is None or self._complete:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        if self._conn._gone:
            return  # as hypercorn did: what is sent to a client that left is dropped
        body = bytes(message.get("body", b""))
        more = bool(message.get("more_body", False))
        # one task sends at a time (the app's): the bytes are made here, then written at once
        out = b""
        if not self._started:
            out = self._head()
            self._started = True
        if body:
            out += self._h11.send(h11.Data(data=body)) or b""
        if not more:
            out += self._h11.send(h11.EndOfMessage()) or b""
            self._complete = True
        if out:
            with contextlib.suppress(ClientDisconnected):  # the app learns it from receive()
                await self._conn.write(out)

    def _head(self) -> bytes:
        assert self._status is not None
        headers = [*self._headers, (b"date", _date.now())]
        if self._conn._stopping():
            headers.append((b"connection", b"close"))
        return self._h11.send(h11.Response(status_code=self._status, headers=headers)) or b""
