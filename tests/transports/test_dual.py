"""Which era each message toward a server of both eras goes in (``EraSplit``, no I/O)."""

from __future__ import annotations

from watchgate.transports.dual import EraSplit


def test_a_legacy_clients_call_its_cancellation_and_the_servers_questions_go_legacy() -> None:
    split = EraSplit()
    assert split.era_of({"id": 1, "method": "tools/call"}) == "modern"  # nothing legacy yet
    split.legacy_client(2)
    assert split.era_of({"id": 1, "method": "tools/list"}) == "modern"  # the gateway's own
    assert split.era_of({"id": 2, "method": "tools/call"}) == "legacy"
    split.received({"id": 7, "method": "sampling/createMessage"})  # the server asks, on the session
    assert split.era_of({"id": 7, "result": {}}) == "legacy"  # the answer goes back there, once
    assert split.era_of({"id": 7, "result": {}}) == "modern"
    cancel = {"method": "notifications/cancelled", "params": {"requestId": 2}}
    assert split.era_of(cancel) == "legacy"
    assert split.era_of(cancel) == "modern"  # forgotten with its cancellation: nothing piles up
    assert split.era_of({"method": "notifications/initialized"}) == "modern"


def test_an_answer_ends_a_call_and_odd_ids_match_nothing() -> None:
    split = EraSplit()
    split.legacy_client(3)
    split.received({"id": 3, "result": {}})
    assert split.era_of({"method": "notifications/cancelled", "params": {"requestId": 3}}) == "modern"
    split.legacy_client(4)
    split.received({"id": {"odd": 1}, "method": "ping"})  # not an id this split can hold
    split.received(None)
    assert split.era_of({"id": [4], "result": {}}) == "modern"
    assert split.era_of({"id": True, "method": "x"}) == "modern"
    assert split.era_of({"method": "notifications/cancelled", "params": "4"}) == "modern"


def test_given_up_everything_goes_modern() -> None:
    split = EraSplit()
    split.legacy_client(5)
    split.give_up()
    split.legacy_client(6)
    assert split.era_of({"id": 5, "method": "tools/call"}) == "modern"
    assert split.era_of({"id": 6, "method": "tools/call"}) == "modern"
