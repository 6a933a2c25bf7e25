"""Outbox: writes that wait are taken one at a time; a write that cannot wait never competes."""

from __future__ import annotations

import os

import trio
import trio.testing

from watchgate.wire.outbox import Outbox
from watchgate.wire.pipes import EagerPipeReceive, EagerPipeSend


def pipe() -> tuple[EagerPipeReceive, EagerPipeSend]:
    r, w = os.pipe()
    return EagerPipeReceive(trio.lowlevel.FdStream(r)), EagerPipeSend(trio.lowlevel.FdStream(w))


async def test_writes_that_wait_do_not_interleave_and_try_send_keeps_out_meanwhile() -> None:
    receive, send = pipe()
    outbox = Outbox(send)
    assert outbox.can_send_nowait and outbox.try_send(b"a\n") == 2
    first, second = b"1" * 300_000 + b"\n", b"2" * 300_000 + b"\n"  # each more than the pipe holds
    got = bytearray()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(outbox.send_all, first)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(outbox.send_all, second)
        await trio.testing.wait_all_tasks_blocked()  # the first waits for room, the second for the lock
        assert not outbox.can_send_nowait and outbox.try_send(b"x\n") == 0
        while len(got) < 2 + len(first) + len(second):
            got += await receive.receive_some(1 << 20)
    assert bytes(got) == b"a\n" + first + second
    await send.aclose()
    await receive.aclose()


async def test_a_stream_that_is_not_a_pipe_only_takes_writes_that_wait() -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    outbox = Outbox(send)
    assert not outbox.can_send_nowait and outbox.try_send(b"x\n") == 0
    await outbox.send_all(b"y\n")
    assert await receive.receive_some() == b"y\n"
