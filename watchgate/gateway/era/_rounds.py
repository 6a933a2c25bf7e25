"""A legacy server's questions toward a 2026-07-28 client on a byte stream: MRTR rounds.

A legacy upstream asks the client something in the middle of a call (``sampling/createMessage``,
``elicitation/create``, ``roots/list``). A 2026-07-28 client takes no requests: the call is
answered ``input_required`` (``inputRequests`` keyed by the gateway's id of each question, an
opaque ``requestState``) while the call upstream stays open. The client retries the call with
``inputResponses`` and that state; the answers go upstream as the responses the server waits
for, and the retry is answered with what follows: the call's own answer under the retry's id,
or another ``input_required``. This is the one place the rounds are kept, for every transport:
on a byte stream one client has many calls, over HTTP each 2026-07-28 request has a client actor
of its own (``listeners/http/modern.py`` finds it again by the ``requestState``); either way the
client actor sends what this says, and this does no I/O.

One rule for every transport: a retry must repeat its call's method (anything else ends the
call), and a call parked on ``input_required`` that nobody resumes within ``PARK_SECONDS`` is
cancelled upstream (`expire`, on the client actor's clock).

Which call a question belongs to: a legacy server's request names none, so it goes to the
client's latest 2026-07-28 request still in flight (a retry stands for its call), else to the
call last answered ``input_required`` (asked again when its retry comes). A client whose
calls of that era have all ended is not asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from msgspec import UNSET

from watchgate.errors import JsonRpcError
from watchgate.protocol import eras, jsonrpc
from watchgate.protocol.jsonrpc import Message, RequestId

__all__ = ["PARK_SECONDS", "ClientRounds", "Resumed"]

PARK_SECONDS: Final = 300.0


@dataclass
class _Round:
    original: RequestId  # the client's id of the call, which its answer upstream comes under
    method: str  # what a retry must repeat
    token: str
    reply: RequestId | None  # the request the client waits on now; None: parked, a retry is due
    asked: dict[str, dict[str, Any]] = field(default_factory=dict)  # question id -> the question
    final: Message | None = None  # the call's answer, come while parked
    parked_at: float = 0.0  # when the client was last answered input_required


@dataclass(frozen=True)
class Resumed:
    """What a retry does: the answers for the server (question id, result), and what the retry
    is answered with now (the call's answer, or ``input_required`` again), if anything yet."""

    answers: list[tuple[str, Any]]
    reply: Message | None
    cancel: RequestId | None = None  # a call the retry ended (it did not repeat its method)


class ClientRounds:
    def __init__(self) -> None:
        #: the calls with a round open, by the client's id of the call (a plain dict: the client
        #: actor tests it on every message it sends)
        self.calls: dict[RequestId, _Round] = {}
        self._by_token: dict[str, _Round] = {}
        self._by_reply: dict[RequestId, _Round] = {}

    def ask(self, question: Message, in_flight: dict[RequestId, str], now: float) -> Message | bool | None:
        """A server's question: the ``input_required`` answer to send now; None when it waits
        for a retry already due; False when no call of this client can carry it.
        ``in_flight``: the client's 2026-07-28 requests in flight (id -> method), oldest first."""
        assert isinstance(question.id, str | int) and isinstance(question.method, str)
        round_ = self._target(in_flight)
        if round_ is None:
            return False
        round_.asked[str(question.id)] = eras.input_request(question)
        return self._park(round_, now)

    def _target(self, in_flight: dict[RequestId, str]) -> _Round | None:
        if in_flight:
            latest = next(reversed(in_flight))
            found = self._by_reply.get(latest)
            if found is not None:
                return found
            round_ = _Round(latest, in_flight[latest], eras.new_round_state(), latest)
            self.calls[latest] = self._by_token[round_.token] = self._by_reply[latest] = round_
            return round_
        parked = [r for r in self.calls.values() if r.reply is None]
        return parked[-1] if parked else None

    def _park(self, round_: _Round, now: float) -> Message | None:
        """End the request the client waits on with everything asked so far."""
        if round_.reply is None:
            return None
        reply, round_.reply = round_.reply, None
        round_.parked_at = now
        self._by_reply.pop(reply, None)
        return jsonrpc.result_response(reply, eras.input_required(round_.asked, round_.token))

    def next_expiry(self) -> float | None:
        """When the oldest parked call expires, if any is parked."""
        parked = [r.parked_at for r in self.calls.values() if r.reply is None]
        return min(parked) + PARK_SECONDS if parked else None

    def expire(self, now: float) -> list[RequestId]:
        """Forget the calls parked ``PARK_SECONDS`` or longer: their ids, to cancel upstream."""
        gone = [r for r in self.calls.values() if r.reply is None and r.parked_at + PARK_SECONDS <= now]
        for round_ in gone:
            self._close(round_)
        return [round_.original for round_ in gone]

    def resume(
        self, retry_id: RequestId, state: str, method: object, responses: Any, now: float
    ) -> Resumed | None:
        """The client's retry of a parked call; None if the state is unknown (or its call ended).
        A retry of another method ends the call: answered -32602, cancelled upstream."""
        round_ = self._by_token.get(state)
        if round_ is None or round_.reply is not None:
            return None
        if method != round_.method:
            self._close(round_)
            why = f"a retry must repeat its call's method ({round_.method}, not {method}): the call has ended"
            refusal = jsonrpc.error_response(retry_id, JsonRpcError(jsonrpc.INVALID_PARAMS, why))
            return Resumed([], refusal, cancel=None if round_.final is not None else round_.original)
        round_.reply = retry_id
        self._by_reply[retry_id] = round_
        answers = []
        for key, result in responses.items() if isinstance(responses, dict) else ():
            if round_.asked.pop(key, None) is not None:  # an answer to something not asked is ignored
                answers.append((key, result))
        if round_.final is not None:  # the call ended while the client was answering: that is all
            final, round_.final = round_.final, None
            self._close(round_)
            return Resumed(answers, final.with_id(retry_id))
        return Resumed(answers, self._park(round_, now) if round_.asked else None)

    def answered(self, msg: Message) -> Message | None:
        """A response on its way to the client: the call's answer under the id the client waits
        on now, or None while the call is parked (the retry gets it); others pass unchanged."""
        round_ = self.calls.get(msg.id) if isinstance(msg.id, str | int) else None
        if round_ is None:
            return msg
        if round_.reply is None:
            round_.final = msg
            return None
        reply = round_.reply
        self._close(round_)
        return msg if reply == round_.original else msg.with_id(reply)

    def call_of(self, request_id: object) -> object:
        """The call a retry stands for (what a cancellation of the retry must name upstream)."""
        round_ = self._by_reply.get(request_id) if isinstance(request_id, str | int) else None
        return request_id if round_ is None else round_.original

    def cancelling(self, msg: Message) -> Message:
        """``notifications/cancelled`` as upstream must see it: a retry's names its call."""
        fields = jsonrpc.params_fields(msg)
        named = jsonrpc.load(fields.get("requestId", UNSET))
        call = self.call_of(named)
        if call == named:
            return msg
        return msg.with_params(jsonrpc.raw_fields({**fields, "requestId": jsonrpc.raw(call)}))

    def _close(self, round_: _Round) -> None:
        self.calls.pop(round_.original, None)
        self._by_token.pop(round_.token, None)
        if round_.reply is not None:
            self._by_reply.pop(round_.reply, None)
