"""A client that is done leaves with one mail to the router, which nothing may cut short: a
cancelled HTTP request (its client left) must still tell the router, or what it has in flight
would never be cancelled upstream."""

from __future__ import annotations

import trio
import trio.testing

from actors import MailboxFull
from watchgate.gateway.client import ClientActor
from watchgate.gateway.messages import ClientGone
from watchgate.protocol import jsonrpc
from watchgate.wire.lines import LineChannel

from .test_real_pipes import pipe


class _Router:
    """A router whose mailbox is full until ``room`` is set."""

    def __init__(self, *, full: bool) -> None:
        self.full = full
        self.room = trio.Event()
        self.mail: list[object] = []

    def tell_nowait(self, msg: object) -> None:
        if self.full:
            raise MailboxFull("full")
        self.mail.append(msg)

    async def tell(self, msg: object) -> None:
        await self.room.wait()
        self.mail.append(msg)

    async def route_now(self, client: object, msg: object) -> bool:
        return False


def _client(router: _Router) -> ClientActor:
    client_in_receive, _ = pipe()
    _, out_send = pipe()
    return ClientActor(LineChannel(out_send, client_in_receive), router=router, routes=router)  # type: ignore[arg-type]


async def test_a_client_leaves_at_once_when_the_router_has_room_even_if_cancelled() -> None:
    router = _Router(full=False)
    client = _client(router)
    with trio.CancelScope() as scope:
        scope.cancel()
        await client.leave()
    assert [type(m) for m in router.mail] == [ClientGone] and client.finished


async def test_a_client_that_must_wait_for_room_still_leaves_when_cancelled_meanwhile() -> None:
    router = _Router(full=True)
    client = _client(router)
    request = trio.CancelScope()

    async def serve_request() -> None:
        with request:
            await client.leave()

    with trio.fail_after(5):  # a leave left waiting fails here rather than hanging the suite
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_request)
            await trio.testing.wait_all_tasks_blocked()
            request.cancel()  # the request's client went away: its task is cancelled
            await trio.testing.wait_all_tasks_blocked()
            assert router.mail == []
            router.room.set()
    assert [type(m) for m in router.mail] == [ClientGone]


def test_what_a_client_sends_at_once_and_what_may_wait() -> None:
    """A group commit releases an answer unshielded only when ``send`` cannot wait: an idle
    era never waits; a busy one waits for a server's question (it may tell the upstream why it
    cannot ask) but not for an answer that is not a subscription's own."""
    client = _client(_Router(full=False))
    answer = jsonrpc.result_response(3, {})
    question = jsonrpc.request(9, "sampling/createMessage", {})
    assert client.sends_now(answer) and client.sends_now(question)
    client._era.requests[3] = "tools/call"  # a 2026-07-28 call in flight: the era is busy
    assert client.sends_now(answer)
    assert client.sends_now(jsonrpc.notification("notifications/progress", {}))
    assert not client.sends_now(question)
