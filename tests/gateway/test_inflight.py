"""The in-flight table maps gateway ids back to clients; mistakes here answer the wrong client."""

from __future__ import annotations

from typing import Any, cast

from actors import Reply
from watchgate.gateway.router.access import Slot
from watchgate.gateway.upstreams.inflight import InFlightTable


class _Client:
    def __init__(self, client_id: int) -> None:
        self.client_id = client_id


def _client(client_id: int) -> Any:
    return cast(Any, _Client(client_id))


def test_ids_are_unique_and_map_back_to_client_and_request() -> None:
    table = InFlightTable()
    one, two = _client(1), _client(2)
    a = table.add("tools/call", 10.0, client=one, client_request_id=1)
    b = table.add("tools/call", 11.0, client=two, client_request_id=1)
    assert (a.gateway_id, b.gateway_id) == (1, 2)
    assert len(table) == 2
    assert table.find(1, 1) is a and table.find(2, 1) is b
    assert table.find(1, 2) is None
    assert table.get(2) is b and table.get(3) is None
    assert [p.gateway_id for p in table] == [1, 2]


def test_pop_forgets_both_ways_and_ids_are_not_reused() -> None:
    table = InFlightTable()
    client = _client(1)
    first = table.add("tools/call", 1.0, client=client, client_request_id="x")
    assert table.pop(first.gateway_id) is first
    assert table.pop(first.gateway_id) is None
    assert table.find(1, "x") is None and len(table) == 0
    again = table.add("tools/call", 2.0, client=client, client_request_id="x")
    assert again.gateway_id == 2 and table.find(1, "x") is again


def test_internal_requests_have_no_client() -> None:
    table = InFlightTable()
    reply: Reply[Any] = Reply()
    internal = table.add("tools/list", 5.0, reply=reply)
    assert internal.reply is reply and internal.client is None
    assert table.clients() == []
    assert table.pop(internal.gateway_id) is internal
    assert table.of_client(1) == []


def test_of_client_and_the_clients_in_flight() -> None:
    table = InFlightTable()
    one, two = _client(1), _client(2)
    table.add("tools/call", 1.0, client=one, client_request_id=1)
    table.add("tools/call", 2.0, client=two, client_request_id=1)
    table.add("tools/list", 3.0, reply=Reply())
    table.add("prompts/get", 4.0, client=one, client_request_id=2, progress_token="tok")
    assert [p.gateway_id for p in table.of_client(1)] == [1, 4]
    assert table.of_client(1)[1].progress_token == "tok"
    assert table.clients() == [one, two]  # each once, the latest first
    table.pop(4)
    table.pop(1)
    assert table.clients() == [two]  # the internal request in between has no client


def test_pop_expired_takes_only_what_is_due_in_order() -> None:
    table = InFlightTable()
    assert table.next_deadline() is None
    for deadline in (1.0, 2.0, 3.0):
        table.add("tools/call", deadline, client=_client(1), client_request_id=int(deadline))
    assert table.next_deadline() == 1.0
    assert table.pop_expired(0.5) == []
    assert [p.deadline for p in table.pop_expired(2.0)] == [1.0, 2.0]
    assert table.find(1, 1) is None
    assert table.next_deadline() == 3.0 and len(table) == 1


def test_drain_empties_the_table() -> None:
    table = InFlightTable()
    table.add("tools/call", 1.0, client=_client(1), client_request_id=1)
    table.add("tools/list", 2.0, reply=Reply())
    drained = table.drain()
    assert [p.method for p in drained] == ["tools/call", "tools/list"]
    assert len(table) == 0 and table.find(1, 1) is None and table.next_deadline() is None


def test_a_call_frees_its_concurrency_slot_however_it_leaves() -> None:
    """Answered, expired, drained (the server went): each frees the slot once, never twice."""
    running: dict[tuple[int, str], int] = {(0, "ana"): 3}
    table = InFlightTable()
    answered, expired, drained = (
        table.add("tools/call", deadline, slot=Slot(running, (0, "ana"))) for deadline in (5.0, 1.0, 9.0)
    )
    table.pop(answered.gateway_id)
    table.pop(answered.gateway_id)
    assert running == {(0, "ana"): 2}
    assert [p.gateway_id for p in table.pop_expired(6.0)] == [expired.gateway_id]
    assert running == {(0, "ana"): 1}
    assert table.drain() == [drained]
    assert running == {}
