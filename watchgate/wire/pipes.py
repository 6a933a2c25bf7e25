"""Pipe streams that try the system call first and wait only when it would block, and wider
pipes (`widen_pipes`).

trio's ``FdStream`` makes a scheduler pass at the start of every ``receive_some`` and
``send_all``, even when the data is already there or the pipe has room. A tool call crosses
four pipe operations in the gateway (client in, server out, server in, client out), and on a
small VM a scheduler pass (an ``epoll_wait`` and a round of the run queue) costs 15-25 µs, so
those passes were a large share of the added latency. These wrappers skip the pass when the
call completes at once and wait exactly as trio does when it does not. So that a busy stream
cannot starve other tasks, every ``_FAIR_STREAK``-th call in a row that did not wait makes the
pass anyway.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys

import trio

DEFAULT_READ = 65536
_FAIR_STREAK = 16


def _translate(exc: OSError) -> trio.ClosedResourceError | trio.BrokenResourceError:
    if exc.errno == errno.EBADF:
        return trio.ClosedResourceError("the pipe was already closed")
    return trio.BrokenResourceError(str(exc))


class EagerPipeReceive(trio.abc.ReceiveStream):
    """The reading end of a pipe (``FdStream``): reads first, waits only on ``EAGAIN``."""

    def __init__(self, stream: trio.lowlevel.FdStream) -> None:
        self._stream = stream  # asked for its fd on every call: -1 once closed, never a reused number
        self._streak = 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._streak >= _FAIR_STREAK:
            self._streak = 0
            await trio.lowlevel.checkpoint()
        while True:
            try:
                fd = self._stream.fileno()
                data = os.read(fd, max_bytes or DEFAULT_READ)
            except BlockingIOError:
                self._streak = 0
                await trio.lowlevel.wait_readable(fd)
                continue
            except OSError as exc:
                raise _translate(exc) from None
            self._streak += 1
            return data

    async def aclose(self) -> None:
        await self._stream.aclose()

    def fileno(self) -> int:
        return self._stream.fileno()


class EagerPipeSend(trio.abc.SendStream):
    """The writing end of a pipe (``FdStream``): writes first, waits only while it is full.

    Unlike ``FdStream`` this does not detect two tasks writing at once: each user has one
    writer (or its own lock), as the gateway's actors do.
    """

    def __init__(self, stream: trio.lowlevel.FdStream) -> None:
        self._stream = stream  # asked for its fd on every call: -1 once closed, never a reused number
        self._streak = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._streak >= _FAIR_STREAK:
            self._streak = 0
            await trio.lowlevel.checkpoint()
        waited = False
        with memoryview(data) as view:
            sent, length = 0, len(view)
            while sent < length:
                fd = self._stream.fileno()
                try:
                    sent += os.write(fd, view[sent:])
                except BlockingIOError:
                    waited = True
                    await trio.lowlevel.wait_writable(fd)
                except OSError as exc:
                    raise _translate(exc) from None
        self._streak = 0 if waited else self._streak + 1

    def send_nowait(self, data: bytes | bytearray | memoryview) -> int:
        """Write what the pipe takes right now, without waiting; return how many bytes that was."""
        try:
            return os.write(self._stream.fileno(), data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise _translate(exc) from None

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._stream.aclose()

    def fileno(self) -> int:
        return self._stream.fileno()


def fd_stream(fd: int) -> trio.lowlevel.FdStream:
    """A trio stream over a pipe or terminal ``fd`` that is handed over (closed with the stream)."""
    return trio.lowlevel.FdStream(fd)


def stdio_streams() -> tuple[trio.lowlevel.FdStream, trio.lowlevel.FdStream]:
    """This process's stdin and stdout as trio streams, on duplicates (closing them leaves fds 0
    and 1 alone), widened when a client gave us pipes: large messages in fewer writes."""
    stdin = fd_stream(os.dup(sys.stdin.fileno()))
    stdout = fd_stream(os.dup(sys.stdout.fileno()))
    widen_pipes(stdin, stdout)
    return stdin, stdout


def eager_receive(stream: trio.abc.ReceiveStream) -> trio.abc.ReceiveStream:
    """``stream`` read eagerly if it is a pipe (``FdStream``); any other stream as it is."""
    return EagerPipeReceive(stream) if isinstance(stream, trio.lowlevel.FdStream) else stream


def eager_send(stream: trio.abc.SendStream) -> trio.abc.SendStream:
    """``stream`` written eagerly if it is a pipe (``FdStream``); any other stream as it is."""
    return EagerPipeSend(stream) if isinstance(stream, trio.lowlevel.FdStream) else stream


PIPE_SIZE = 1 << 20  # Linux's default /proc/sys/fs/pipe-max-size: no privilege needed


def widen_pipes(*streams: object) -> None:
    """Give pipes 1 MiB instead of 64 KiB, so a large message crosses in a few
    reads and wake-ups instead of ~16 per MiB. Best effort: Linux only, and a lowered
    ``pipe-max-size`` simply leaves the default."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    for stream in streams:
        fileno = getattr(stream, "fileno", None)
        if set_size is None or fileno is None:
            continue
        with contextlib.suppress(OSError):
            fcntl.fcntl(fileno(), set_size, PIPE_SIZE)
