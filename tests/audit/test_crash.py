"""kill -9 during a stream of confirmed writes: every confirmed record survives, the chain holds.

The gateway releases a response only after ``write_and_confirm`` returns, so "confirmed" here
stands for "the client got its response". A real process is killed; nothing here sleeps, the
test only reads the child's output until enough writes were confirmed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from watchgate.audit import verify_log
from watchgate.audit.chain import ChainWriter
from watchgate.audit.files import log_files, read_lines
from watchgate.audit.record import decode_record

from .helpers import Clock, call

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import sys, trio
    from watchgate.audit import AuditActor, AuditEntry
    from watchgate.config import AuditConfig

    async def client(actor, number):
        i = 0
        while True:
            record = await actor.write_and_confirm(AuditEntry(event="response", client=f"c{number}", request_id=i))
            print(f"c{number} {i} {record.seq}", flush=True)
            i += 1

    async def main():
        actor = AuditActor(AuditConfig(path=sys.argv[1], fsync="never", max_bytes=8192, keep=50))
        async with trio.open_nursery() as nursery:
            await nursery.start(actor.run)
            for number in range(4):
                nursery.start_soon(client, actor, number)

    trio.run(main)
    """
)


def test_kill_9_loses_no_confirmed_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert child.stdout is not None
    confirmed: set[tuple[str, int]] = set()
    try:
        while len(confirmed) < 400:
            line = child.stdout.readline().split()
            assert line, "the writer died on its own"
            confirmed.add((line[0].decode(), int(line[1])))
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert len(log_files(str(path))) > 2  # it rotated while running

    result = verify_log(str(path))
    complete = result.ok or (result.problem or "").startswith("the last line is incomplete")
    assert complete, result.report()
    logged = {
        (record.client, record.request_id)
        for file in log_files(str(path))
        for line in read_lines(file)
        if line.complete
        for record in [decode_record(line.data)]
        if record.event == "response"
    }
    assert confirmed <= logged

    writer = ChainWriter(str(path), max_bytes=8192, keep=50, clock=Clock())  # the daemon comes back
    # "rotate" when the kill fell inside a rotation (the new file empty or not there yet): the
    # chain goes on from the rotated file; only "genesis" would be a broken chain
    assert writer.open().method in {"resume", "rotate"}
    assert writer.append([call(1)]).error is None
    assert verify_log(str(path)).ok
