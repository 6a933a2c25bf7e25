"""Eager pipe streams: the system call first, a wait only when it would block, trio's errors."""

from __future__ import annotations

import os

import pytest
import trio
import trio.testing

from watchgate.wire.pipes import EagerPipeReceive, EagerPipeSend, eager_receive, eager_send


def pipe() -> tuple[EagerPipeReceive, EagerPipeSend]:
    r, w = os.pipe()
    return EagerPipeReceive(trio.lowlevel.FdStream(r)), EagerPipeSend(trio.lowlevel.FdStream(w))


async def test_data_and_end_of_stream_pass_through() -> None:
    receive, send = pipe()
    await send.send_all(b"hello\n")
    assert await receive.receive_some() == b"hello\n"
    await send.aclose()
    assert await receive.receive_some(10) == b""
    await receive.aclose()


async def test_a_read_waits_for_data_and_a_write_waits_for_room() -> None:
    receive, send = pipe()
    got: list[bytes] = []
    big = b"x" * (1 << 21)  # more than any pipe holds: the writer must wait for the reader

    async def read_all() -> None:
        while len(b"".join(got)) < len(big):
            got.append(await receive.receive_some(65536))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_all)
        await trio.testing.wait_all_tasks_blocked()  # the reader waits on an empty pipe
        await send.send_all(big)
    assert b"".join(got) == big
    await send.aclose()
    await receive.aclose()


async def test_closed_and_broken_pipes_raise_trios_errors() -> None:
    receive, send = pipe()
    await receive.aclose()
    with pytest.raises(trio.BrokenResourceError):
        await send.send_all(b"nobody reads this")
    with pytest.raises(trio.ClosedResourceError):
        await receive.receive_some()
    await send.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await send.send_all(b"x")


async def test_a_stream_that_never_waits_still_lets_others_run() -> None:
    receive, send = pipe()
    ran = 0

    async def other() -> None:
        nonlocal ran
        while True:
            ran += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        await trio.lowlevel.checkpoint()
        before = ran
        for _ in range(40):  # never blocks: the pipe always has room and data
            await send.send_all(b"y")
            await receive.receive_some(1)
        assert ran > before  # the fairness pass let the other task in
        nursery.cancel_scope.cancel()
    await send.aclose()
    await receive.aclose()


async def test_only_pipes_are_wrapped() -> None:
    one, two = trio.testing.memory_stream_pair()
    assert eager_receive(one) is one and eager_send(two) is two
    r, w = os.pipe()
    wrapped_r, wrapped_w = eager_receive(trio.lowlevel.FdStream(r)), eager_send(trio.lowlevel.FdStream(w))
    assert isinstance(wrapped_r, EagerPipeReceive) and wrapped_r.fileno() == r
    assert isinstance(wrapped_w, EagerPipeSend) and wrapped_w.fileno() == w
    await wrapped_w.wait_send_all_might_not_block()
    await wrapped_r.aclose()
    await wrapped_w.aclose()
