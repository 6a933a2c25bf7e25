"""Server-to-client requests toward a 2026-07-28 client: multi round-trip requests (MRTR).

A legacy upstream asks the client something in the middle of a call (``sampling/createMessage``,
``elicitation/create``, ``roots/list``). A 2026-07-28 client takes no requests on its streams:
the call's answer becomes an ``input_required`` result naming what is asked (``inputRequests``,
keyed by the gateway's id of each question) and an opaque ``requestState``; the upstream call
stays open, its session parked. The client retries the call with ``inputResponses`` and that
``requestState``: the answers go to the upstream as the responses it waits for, and the retry's
stream carries what follows (the call's answer, under the retry's id, or another
``input_required``). A parked session nobody resumes within ``PARK_SECONDS`` is ended (its call
is cancelled upstream). The state lives in this process: a retry that reaches another gateway
process gets -32602 and starts over.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from watchgate.listeners.http.session import HttpSession
from watchgate.listeners.http.streams import EventLog
from watchgate.protocol import eras, jsonrpc

__all__ = ["PARK_SECONDS", "MrtrSession"]

PARK_SECONDS: Final = 300.0


class MrtrSession(HttpSession):
    translates_requests = True  # the client actor may route the client's questions here

    def __init__(self, token: str) -> None:
        super().__init__(None)
        self.token = token
        self.parkings = 0  # how often it was parked: an expiry is for one parking only
        self.method: str | None = None
        self.asked: dict[str, dict[str, Any]] = {}  # the gateway's id of a question -> the question
        self._original: int | str | None = None  # the id the upstream call answers to
        self._reply_id: int | str | None = None  # the id the client's current request waits for
        self._current: EventLog | None = None
        self.answered = False  # the call's own answer came: nothing more to park for
        self._final: jsonrpc.Message | None = None  # that answer, when it came while parked

    @property
    def parked(self) -> bool:
        """The current request was answered with ``input_required``: the retry comes for the rest."""
        current = self._current
        waiting = bool(self.asked) and not self.answered
        return current is not None and current.complete and (waiting or self._final is not None)

    async def post_request(self, msg: jsonrpc.Message, line: bytes) -> EventLog:
        assert isinstance(msg.id, int | str) and isinstance(msg.method, str)
        self._original = self._reply_id = msg.id
        self.method = msg.method
        self._current = EventLog(1, limit=self._history)
        await self.post(line)
        return self._current

    async def resume(self, retry: jsonrpc.Message, responses: Any) -> EventLog:
        """The client's retry: its answers to what was asked go upstream; the log returned
        carries what follows."""
        assert isinstance(retry.id, int | str)
        self._reply_id = retry.id
        number = self._current.number + 1 if self._current is not None else 1
        self._current = EventLog(number, limit=self._history)
        if self._final is not None:  # the call ended while the client was answering: that is all
            self._current.append(jsonrpc.encode(self._final.with_id(retry.id)))
            self._current.finish()
            self._final = None
            return self._current
        for key, result in responses.items() if isinstance(responses, dict) else ():
            if key in self.asked:  # an answer to something not asked is ignored
                del self.asked[key]
                await self.post(jsonrpc.encode(jsonrpc.result_response(key, result)))
        if self.asked:  # some questions are still open: ask them again at once
            self._ask()
        return self._current

    def _route(self, line: bytes) -> None:
        msg = jsonrpc.decode(line)
        current = self._current
        if msg.method is msgspec.UNSET:  # the call's answer (nothing else is asked of the client)
            if msg.id == self._original and current is not None:
                self.answered = True
                if current.complete:  # parked: the retry gets it
                    self._final = msg
                    return
                if self._reply_id != self._original:
                    assert self._reply_id is not None
                    line = jsonrpc.encode(msg.with_id(self._reply_id))
                current.append(line)
                current.finish()
            return
        if msg.id is not msgspec.UNSET and msg.id is not None:  # a question for the client
            self.asked[str(msg.id)] = eras.input_request(msg)
            self._ask()
            return
        if current is not None and not current.complete:  # progress and log messages of the call
            current.append(line)

    def _ask(self) -> None:
        """End the current request with ``input_required`` for everything still asked."""
        current = self._current
        if current is None or current.complete or self._reply_id is None:
            return  # asked while parked: the retry will ask it
        result = eras.input_required(self.asked, self.token)
        current.append(jsonrpc.encode(jsonrpc.result_response(self._reply_id, result)))
        current.finish()
