"""The bookkeeping of MRTR rounds on a byte stream (gateway/era/_rounds.py), the cases the gateway
tests reach only by chance: no call to ask in, an answer that comes while the call is parked,
answers to what was not asked."""

from __future__ import annotations

from typing import Any

from watchgate.gateway.era import ClientRounds
from watchgate.protocol import jsonrpc


def question(qid: str) -> jsonrpc.Message:
    return jsonrpc.decode(jsonrpc.encode(jsonrpc.request(qid, "roots/list", {})))


def result_of(msg: jsonrpc.Message | None) -> Any:
    assert isinstance(msg, jsonrpc.Message)
    return jsonrpc.load(msg.result)


def test_a_question_with_no_call_to_carry_it_is_refused() -> None:
    assert ClientRounds().ask(question("q1"), {}, 0.0) is False


def test_the_calls_answer_while_parked_waits_for_the_retry() -> None:
    rounds = ClientRounds()
    asked = rounds.ask(question("q1"), {7: "tools/call"}, 0.0)
    state = result_of(asked)["requestState"]
    answer = jsonrpc.decode(jsonrpc.encode(jsonrpc.result_response(7, {"content": []})))
    assert rounds.answered(answer) is None  # parked: held for the retry
    resumed = rounds.resume(8, state, "tools/call", {"q1": {"roots": []}, "never-asked": {}}, 0.0)
    assert resumed is not None and resumed.answers == [("q1", {"roots": []})]
    assert resumed.reply is not None and resumed.reply.id == 8 and result_of(resumed.reply) == {"content": []}
    assert not rounds.calls  # the call is over
    assert rounds.resume(9, state, "tools/call", {}, 0.0) is None  # its state is gone with it


def test_a_question_while_parked_is_asked_of_the_retry() -> None:
    rounds = ClientRounds()
    state = result_of(rounds.ask(question("q1"), {7: "tools/call"}, 0.0))["requestState"]
    assert rounds.ask(question("q2"), {}, 0.0) is None  # the parked call carries it, once retried
    resumed = rounds.resume(8, state, "tools/call", {"q1": {}}, 0.0)
    assert resumed is not None and resumed.reply is not None
    again = result_of(resumed.reply)
    assert again["resultType"] == "input_required" and list(again["inputRequests"]) == ["q2"]


def test_a_retry_stands_for_its_call() -> None:
    rounds = ClientRounds()
    state = result_of(rounds.ask(question("q1"), {7: "tools/call"}, 0.0))["requestState"]
    rounds.resume("retry", state, "tools/call", {"q1": {}}, 0.0)
    assert rounds.call_of("retry") == 7  # cancelling the retry cancels call 7 upstream
    assert rounds.call_of("other") == "other"
    answer = jsonrpc.decode(jsonrpc.encode(jsonrpc.result_response(7, {})))
    assert rounds.answered(answer).id == "retry"  # type: ignore[union-attr]
