"""Misbehaving servers, in `watchgate run` and behind the daemon: the gateway stays up, the other
server and (with the daemon) another client are unaffected, the error names the server, no
process is left behind, and the audit log is complete and verifies (design.md §12)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from tests.faults.harness import audit_is_complete, gateway, none_left, processes_with, server, write_config

pytestmark = pytest.mark.integration

# mode -> what the call of bad__act must get: ("result", text) or ("error", code, words in message)
EXPECTED: dict[str, tuple[Any, ...]] = {
    "crash": ("error", -32003, "exited with code 3; stderr: fatal: the act tool broke"),
    "hang": ("error", -32001, "'bad'"),
    "garbage": ("result", "after the garbage"),
    "big": ("result", 10_000_000),
    "drip": ("result", "dripped"),
    "noinit": ("error", None, "'bad'"),
    "exitloop": ("error", None, "'bad'"),
    "grandchild": ("error", -32003, "exited with code 5"),
    "setsid": ("result", "fine"),
    "ignoreterm": ("result", "fine"),
    "closestdout": ("error", -32003, "closed its stdout"),
}


@pytest.mark.parametrize("mode", ["run", "daemon"])
@pytest.mark.parametrize("fault", sorted(EXPECTED))
async def test_a_misbehaving_server_harms_nothing_else(fault: str, mode: str, tmp_path: Path) -> None:
    marker = f"wg-fault-{fault}-{mode}-{tmp_path.name}"
    config = write_config(tmp_path, server("bad", fault, marker), server("ok", "well", marker))
    with trio.fail_after(120):
        async with gateway(mode, config) as gw:
            client = await gw.client()
            await client.initialize()
            other = None
            if mode == "daemon":
                other = await gw.client()
                await other.initialize()
            answer = await client.call(1, "bad__act")
            expected = EXPECTED[fault]
            if expected[0] == "result":
                assert "result" in answer, answer
                body = answer["result"]["content"][0]["text"]
                assert (len(body) if isinstance(expected[1], int) else body) == expected[1]
            else:
                assert "error" in answer, answer
                code, words = expected[1], expected[2]
                assert code is None or answer["error"]["code"] == code, answer
                assert code is not None or answer["error"]["code"] in (-32003, -32602), answer
                assert words in answer["error"]["message"], answer
            for who in filter(None, (client, other)):  # the other server, from every client
                echoed = await who.call(2, "ok__echo", {"text": "still here"})
                assert echoed["result"]["content"][0]["text"] == "still here"
            assert await gw.alive()
            if fault in ("setsid", "ignoreterm"):
                assert processes_with(marker)  # they run until the gateway stops them
    assert await none_left(marker) == [], f"processes outlived the gateway: {processes_with(marker)}"
    verified, records = audit_is_complete(tmp_path)
    assert verified
    answered = [r for r in records if r["event"] in ("response", "call") and r.get("server") in ("bad", "ok")]
    assert len(answered) == (2 if mode == "run" else 3)
