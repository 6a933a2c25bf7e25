"""A legacy session's request is read in the HTTP request's own task when its client actor is
idle (one task hop less), and never overtakes a line the client posted before it."""

from __future__ import annotations

import trio
import trio.testing

from watchgate.gateway.client import ClientActor
from watchgate.listeners.http.session import HttpSession
from watchgate.protocol import jsonrpc


class _Routes:
    """Records each routed request's id and the task that routed it; ``hold`` blocks one id."""

    def __init__(self) -> None:
        self.routed: list[tuple[object, str]] = []
        self.hold: dict[object, trio.Event] = {}

    async def tell(self, msg: object) -> None:
        pass

    async def route_now(self, client: object, msg: jsonrpc.Message) -> bool:
        if msg.id in self.hold:
            await self.hold[msg.id].wait()
        self.routed.append((msg.id, trio.lowlevel.current_task().name))
        return True


def _call(request_id: int) -> tuple[jsonrpc.Message, bytes]:
    line = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo"}}' % request_id
    return jsonrpc.decode(line), line


async def test_an_idle_actor_reads_the_line_in_the_posting_task_and_a_busy_one_queues_it() -> None:
    routes = _Routes()
    session = HttpSession("s")
    actor = ClientActor(session, router=routes, routes=routes)  # type: ignore[arg-type]
    poster = trio.lowlevel.current_task().name
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await session.post_request(*_call(1))
        assert routes.routed == [(1, poster)]  # read at once, in this task

        routes.hold[2] = trio.Event()
        nursery.start_soon(session.post_request, *_call(2))  # read inline, then stuck upstream
        await trio.testing.wait_all_tasks_blocked()
        await session.post_request(*_call(3))  # the reader is busy: queued behind 2
        await trio.testing.wait_all_tasks_blocked()
        assert routes.routed == [(1, poster)]
        routes.hold[2].set()
        await trio.testing.wait_all_tasks_blocked()
        assert [request_id for request_id, _ in routes.routed] == [1, 2, 3]
        assert routes.routed[2][1] != poster  # 3 was read by the actor's own loop

        nursery.cancel_scope.cancel()


async def test_lines_after_an_initialize_wait_for_its_answer_in_order() -> None:
    routes = _Routes()
    session = HttpSession("s")
    actor = ClientActor(session, router=routes, routes=routes)  # type: ignore[arg-type]
    initialize = b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}'
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await session.post_request(jsonrpc.decode(initialize), initialize)  # read inline
        for request_id in (5, 6):  # not read before the initialize is answered: queued
            await session.post_request(*_call(request_id))
        await trio.testing.wait_all_tasks_blocked()
        assert [request_id for request_id, _ in routes.routed] == [0]
        await actor.send(jsonrpc.result_response(0, {}))
        await trio.testing.wait_all_tasks_blocked()
        assert [request_id for request_id, _ in routes.routed] == [0, 5, 6]
        await session.post_request(*_call(7))  # answered initialize, idle: inline again
        assert routes.routed[-1] == (7, trio.lowlevel.current_task().name)
        nursery.cancel_scope.cancel()
