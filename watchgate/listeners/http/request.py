"""The client actor's channel for a 2026-07-28 client over HTTP: one request at a time.

Each request stands alone, with a client actor of its own (``modern.py``). What the actor
writes while a request is open — progress, log messages, at last the request's answer — goes to
that request's stream, and its answer ends the stream. The era's work (the ``_meta`` check, the
shape of results, a legacy server's questions as ``input_required`` rounds with their expiry,
``subscriptions/listen``) is the client actor's, as on stdio and the daemon's socket
(``gateway/era/``); this carries lines. An answer that is the
gateway's own ``input_required`` leaves the actor waiting (``parked_on`` names its
``requestState``): the listener keeps the channel for the retry, which comes as the channel's
next request.
"""

from __future__ import annotations

import msgspec

from watchgate.listeners.http.session import HttpSession
from watchgate.listeners.http.streams import EventLog
from watchgate.protocol import eras, jsonrpc

__all__ = ["RequestChannel"]


class RequestChannel(HttpSession):
    def __init__(self) -> None:
        super().__init__(None)
        self.parked_on: str | None = None  # the requestState that ended the current request, if ours
        self._waiting: int | str | None = None  # the id of the request whose answer ends the stream
        self._current: EventLog | None = None

    def expect(self, msg: jsonrpc.Message) -> EventLog:
        """The stream of ``msg``, a request its client actor is about to read (in the caller's
        task: `ClientActor.take`; or from this channel: `post_request`)."""
        assert isinstance(msg.id, int | str)
        self._waiting, self.parked_on = msg.id, None
        number = self._current.number + 1 if self._current is not None else 1
        self._current = EventLog(number, limit=self._history)
        return self._current

    async def post_request(self, msg: jsonrpc.Message, line: bytes) -> EventLog:
        log = self.expect(msg)
        await self.post(line)
        return log

    def _route_message(self, msg: jsonrpc.Message, line: bytes) -> None:
        current = self._current
        if current is None or current.complete:
            return  # between requests nothing is the client's (the actor sends nothing then)
        current.append(line)
        if msg.method is msgspec.UNSET and msg.id == self._waiting:
            self.parked_on = eras.own_state_of(msg) if b"input_required" in line else None
            current.finish()
