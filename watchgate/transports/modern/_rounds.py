"""Multi round-trip requests (2026-07-28) answered by clients of the ``initialize`` era.

A modern server that needs input during ``tools/call``, ``prompts/get`` or ``resources/read``
answers ``resultType: "input_required"`` with ``inputRequests`` (elicitation, sampling, roots)
and an opaque ``requestState``, and expects the request again, under a new id, carrying
``inputResponses`` and that exact ``requestState``. The gateway's clients know the older shape:
server-to-client requests while their call is in flight. So the connection turns each input
request into such a request toward the actor (who routes it to the calling client, ADR-015),
collects the answers, and sends the retry itself; the client sees one call and one result.
``requestState`` is never read, only echoed byte for byte.

No I/O here: `InputRounds` is the bookkeeping, the HTTP connection does the sending.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["InputRounds", "Retry"]

_RETRYABLE: Final = frozenset({"tools/call", "prompts/get", "resources/read"})
_INPUT_METHODS: Final = frozenset({"elicitation/create", "sampling/createMessage", "roots/list"})
_MAX_ROUNDS: Final = 8  # a server that keeps asking is answered with an error, not looped on


@dataclass
class _Round:
    original_id: Any
    request: dict[str, Any]
    state: Any
    waiting: dict[str, str] = field(default_factory=dict)  # our request id -> input key
    responses: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Retry:
    """The request to send again, under a new id, with the client's inputs."""

    message: dict[str, Any]


class InputRounds:
    """The input rounds of the calls in flight on one modern connection."""

    def __init__(self) -> None:
        self._requests: dict[Any, dict[str, Any]] = {}  # id sent -> the request as sent
        self._original: dict[Any, Any] = {}  # retry id -> the actor's id
        self._rounds: dict[str, _Round] = {}  # input request id -> its round
        self._count: dict[Any, int] = {}  # the actor's id -> rounds so far
        self._ids = itertools.count(1)

    def sent(self, message: dict[str, Any]) -> None:
        """Note a request that may come back ``input_required``."""
        if message.get("method") in _RETRYABLE and "id" in message:
            self._requests[message["id"]] = message

    def concerns(self, answer_id: Any, message: bytes) -> bool:
        """Whether an answer is the rounds' business: a retry's answer, or an ``input_required``
        result for a request that may have one. Anything else settles its request here."""
        if answer_id in self._original or (answer_id in self._requests and b'"input_required"' in message):
            return True
        if self._requests.pop(answer_id, None) is not None:
            self._count.pop(answer_id, None)
        return False

    def answered(self, answer: dict[str, Any]) -> list[dict[str, Any]] | Retry | None:
        """An answer from the server. None: final, deliver it (its id is set back to the
        actor's). A list: input requests to put to the client. A `Retry`: send it now."""
        answer_id = answer.get("id")
        request = self._requests.pop(answer_id, None)
        original = self._original.pop(answer_id, answer_id)
        answer["id"] = original
        result = answer.get("result")
        if request is None or not isinstance(result, dict) or result.get("resultType") != "input_required":
            self._count.pop(original, None)
            return None
        rounds = self._count[original] = self._count.get(original, 0) + 1
        if rounds > _MAX_ROUNDS:
            self._count.pop(original, None)
            answer.pop("result")
            answer["error"] = {
                "code": -32603,
                "message": f"the server asked for input {_MAX_ROUNDS} times in a row",
            }
            return None
        inputs = result.get("inputRequests")
        round_ = _Round(original, request, result.get("requestState"))
        asks: list[dict[str, Any]] = []
        for key, ask in (inputs or {}).items() if isinstance(inputs, dict) else ():
            if not isinstance(ask, dict) or ask.get("method") not in _INPUT_METHODS:
                continue
            ask_id = f"watchgate-input-{next(self._ids)}"
            round_.waiting[ask_id] = key
            self._rounds[ask_id] = round_
            asks.append(
                {"jsonrpc": "2.0", "id": ask_id, "method": ask["method"], "params": ask.get("params", {})}
            )
        return asks or self._retry(round_)

    def input_given(self, message: dict[str, Any]) -> Retry | dict[str, Any] | None:
        """A client's answer to an input request (``message`` has no method). A `Retry` once
        the round is complete; an error answer for the actor if the client could not answer;
        None while other inputs are outstanding. KeyError if it answers nothing of ours."""
        round_ = self._rounds.pop(message["id"])
        key = round_.waiting.pop(message["id"])
        if "error" in message:
            for other in round_.waiting:
                self._rounds.pop(other, None)
            self._count.pop(round_.original_id, None)
            error = message["error"] if isinstance(message["error"], dict) else {}
            said = error.get("message", "an error")
            reason = f"the client could not give the input the server asked for: {said}"
            return {"jsonrpc": "2.0", "id": round_.original_id, "error": {"code": -32603, "message": reason}}
        round_.responses[key] = message.get("result")
        return None if round_.waiting else self._retry(round_)

    def owns(self, message_id: Any) -> bool:
        return message_id in self._rounds

    def _retry(self, round_: _Round) -> Retry:
        retry_id = f"watchgate-retry-{next(self._ids)}"
        params = dict(round_.request.get("params") or {})
        params.pop("inputResponses", None)
        params.pop("requestState", None)
        if round_.responses:
            params["inputResponses"] = round_.responses
        if round_.state is not None:
            params["requestState"] = round_.state
        message = {**round_.request, "id": retry_id, "params": params}
        self._original[retry_id] = round_.original_id
        self._requests[retry_id] = message
        return Retry(message)
