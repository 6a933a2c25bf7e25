"""A bare pass-through on trio: the runtime's floor, the arm every gateway number is held against.

Run as ``python passthrough.py -- COMMAND ARGS...``. It starts the server and copies bytes both
ways with two `trio.lowlevel.FdStream` pumps: no parsing, no framing, no policy. Whatever
Watchgate costs above this arm is Watchgate's own; whatever this arm costs above *direct* is
the price of putting any trio process in the middle (design.md §10).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

import trio

CHUNK = 65536


async def _pump(source: trio.abc.ReceiveStream, sink: trio.abc.SendStream) -> None:
    """Copy until ``source`` ends, then close ``sink`` so the other side sees the end too."""
    async with sink:
        while data := await source.receive_some(CHUNK):
            await sink.send_all(data)


async def relay(command: Sequence[str]) -> int:
    process = await trio.lowlevel.open_process(list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None
    client_in = trio.lowlevel.FdStream(os.dup(0))
    client_out = trio.lowlevel.FdStream(os.dup(1))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_pump, client_in, process.stdin)
        nursery.start_soon(_pump, process.stdout, client_out)
    return await process.wait()


def main(argv: Sequence[str]) -> int:
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        print("usage: passthrough.py -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    return trio.run(relay, argv[argv.index("--") + 1 :])


if __name__ == "__main__":  # pragma: no cover - run as a script by the benchmark
    sys.exit(main(sys.argv[1:]))
