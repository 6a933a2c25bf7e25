"""The message half of the upstream seam over streams: lines out, bursts in, a gone peer dropped."""

from __future__ import annotations

import os

import pytest
import trio
import trio.testing

from watchgate.errors import PeerGone
from watchgate.wire.lines import LineChannel
from watchgate.wire.pipes import eager_send, fd_stream


async def test_what_arrived_together_comes_out_as_one_burst() -> None:
    to_peer, at_peer = trio.testing.memory_stream_one_way_pair()
    from_peer, ours = trio.testing.memory_stream_one_way_pair()
    channel = LineChannel(to_peer, ours)
    await from_peer.send_all(b'{"id":1}\n{"id":2}\n\n{"id":3}\n{"id":')
    bursts = channel.receive()
    assert await bursts.__anext__() == [b'{"id":1}', b'{"id":2}', b'{"id":3}']  # blank lines skipped
    await from_peer.send_all(b"4}\n")
    assert await bursts.__anext__() == [b'{"id":4}']
    await from_peer.aclose()
    assert [burst async for burst in bursts] == []
    await channel.send(b"a\nb\n")
    assert await at_peer.receive_some() == b"a\nb\n"


async def test_a_peer_that_is_gone_is_one_watchgate_error() -> None:
    to_peer, at_peer = trio.testing.memory_stream_one_way_pair()
    _, ours = trio.testing.memory_stream_one_way_pair()
    channel = LineChannel(to_peer, ours)
    assert not channel.ready  # a memory stream has no fast path: everything goes through send
    await at_peer.aclose()
    await to_peer.aclose()
    assert channel.send_nowait(b"not now\n") == 0  # no fast path: nothing goes at once
    with pytest.raises(PeerGone):  # trio's own error stops at the wire layer
        await channel.send(b"lost\n")


async def test_the_pipe_fast_path_writes_at_once_and_a_broken_pipe_is_translated() -> None:
    read_fd, write_fd = os.pipe()
    channel = LineChannel(eager_send(fd_stream(write_fd)), trio.testing.memory_stream_one_way_pair()[1])
    assert channel.ready
    assert channel.send_nowait(b"now\n") == 4
    assert os.read(read_fd, 10) == b"now\n"
    os.close(read_fd)
    with pytest.raises(PeerGone):
        channel.send_nowait(b"gone\n")
    with pytest.raises(PeerGone):
        await channel.send(b"gone too\n")
