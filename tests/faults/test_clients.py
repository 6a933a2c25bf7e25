"""Hostile clients, in `watchgate run` and behind the daemon: each gets a clear JSON-RPC error or
is let go, and nothing it does reaches another client, a server, or the audit chain."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from tests.faults.harness import (
    Gateway,
    RawClient,
    audit_is_complete,
    gateway,
    none_left,
    server,
    write_config,
)

pytestmark = pytest.mark.integration

DEEP = b"[" * 5000 + b"]" * 5000
# what is sent -> the error code it must get (None: no answer is due, the session just goes on)
HOSTILE: list[tuple[str, bytes, int | None]] = [
    ("not json", b"{this is not json\n", -32700),
    ("bad utf-8", b'{"jsonrpc":"2.0","id":"u","method":"ping","params":{"x":"\xff\xfe"}}\n', -32700),
    # valid JSON, but no request Watchgate will carry: -32600, under its own id (the client waits for it)
    ("deep nesting", b'{"jsonrpc":"2.0","id":"d","method":"ping","params":{"a":' + DEEP + b"}}\n", -32600),
    ("a batch", b'[{"jsonrpc":"2.0","id":"b","method":"ping"}]\n', -32600),
    ("wrong types", b'{"jsonrpc":"2.0","id":"w","method":42}\n', -32600),
    ("huge number id", b'{"jsonrpc":"2.0","id":1' + b"0" * 400 + b',"method":"ping"}\n', None),
    ("unknown method", b'{"jsonrpc":"2.0","id":"m","method":"no/such"}\n', -32601),
    (
        "unknown server",
        b'{"jsonrpc":"2.0","id":"s","method":"tools/call","params":{"name":"zz__x"}}\n',
        -32602,
    ),
    ("params not an object", b'{"jsonrpc":"2.0","id":"p","method":"tools/call","params":[1]}\n', -32602),
    ("stray response", b'{"jsonrpc":"2.0","id":"nobody-asked","result":{}}\n', None),
    ("empty lines", b"\n\n   \n", None),
]


@asynccontextmanager
async def calm_and_rude(
    folder: Path, marker: str, *, request_timeout: float
) -> AsyncIterator[tuple[Gateway, RawClient, RawClient]]:
    """A daemon with two servers, one well-behaved client and one that never reads."""
    config = write_config(
        folder, server("ok", "well", marker, request_timeout=request_timeout), server("other", "well", marker)
    )
    async with gateway("daemon", config) as gw:
        calm = await gw.client()
        await calm.initialize()
        yield gw, calm, await gw.client(reading=False)


async def send_until_cut_off(client: RawClient, data: bytes) -> None:
    """Send, until the daemon lets the (non-reading) client go and its pipe breaks."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await client.send_raw(data)


def echo_line(text: str) -> bytes:
    call = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "tools/call",
        "params": {"name": "ok__echo", "arguments": {"text": text}},
    }
    return json.dumps(call).encode() + b"\n"


@pytest.mark.parametrize("mode", ["run", "daemon"])
async def test_hostile_input_gets_clear_errors_and_the_session_goes_on(mode: str, tmp_path: Path) -> None:
    marker = f"wg-hostile-{mode}-{tmp_path.name}"
    config = write_config(tmp_path, server("ok", "well", marker), server("other", "well", marker))
    with trio.fail_after(120):
        async with gateway(mode, config) as gw:
            client = await gw.client()
            await client.initialize()
            for name, data, code in HOSTILE:
                await client.send_raw(data)
                if code is not None:
                    answers = [a for answers in client.answers.values() for a in answers]
                    with trio.fail_after(10):
                        while not any(a.get("error", {}).get("code") == code for a in answers):
                            await client.arrived.wait()
                            answers = [a for answers in client.answers.values() for a in answers]
                    client.answers.clear()
                pong = await client.request(f"after {name}", "ping")
                assert pong["result"] == {}, name
            # the same id twice, both in flight: each call is answered
            for _ in range(2):
                await client.send(
                    {
                        "jsonrpc": "2.0",
                        "id": 7,
                        "method": "tools/call",
                        "params": {"name": "ok__echo", "arguments": {"text": "twice"}},
                    }
                )
            twice = [await client.answer(7), await client.answer(7)]
            assert [a["result"]["content"][0]["text"] for a in twice] == ["twice", "twice"]
            echoed = await client.call("last", "other__echo", {"text": "fine"})
            assert echoed["result"]["content"][0]["text"] == "fine"
            assert await gw.alive()
    assert await none_left(marker) == []
    verified, _ = audit_is_complete(tmp_path)
    assert verified


async def test_a_flood_then_disconnect_leaves_the_daemon_and_its_other_clients_unharmed(
    tmp_path: Path,
) -> None:
    marker = f"wg-flood-{tmp_path.name}"
    with trio.fail_after(120):
        async with calm_and_rude(tmp_path, marker, request_timeout=30) as (gw, calm, flood):
            line = echo_line("x" * 2000)
            async with trio.open_nursery() as sending:  # backpressure stalls the sender: as it should
                sending.start_soon(send_until_cut_off, flood, line * 5000)
                with trio.move_on_after(30):
                    while (
                        max(
                            u["in_flight"]
                            for u in json.loads((await gw.cli("ps", "--json")).stdout)["upstreams"]
                        )
                        < 50
                    ):
                        await trio.sleep(0.05)
                # the client dies mid-flood: kill -9 of its attach, and its pipes close
                sending.cancel_scope.cancel()
            flood.process.kill()
            await flood.close()
            assert flood.process.stdout is not None
            await flood.process.stdout.aclose()
            for n in range(3):
                echoed = await calm.call(n, "ok__echo", {"text": "calm"}, timeout=30)
                assert "result" in echoed, echoed
                assert echoed["result"]["content"][0]["text"] == "calm"
            with trio.fail_after(30):
                while (ps := json.loads((await gw.cli("ps", "--json")).stdout))["clients"] and len(
                    ps["clients"]
                ) > 1:
                    await trio.sleep(0.1)
            with trio.fail_after(30):  # the dead client's calls are cancelled upstream, none left hanging
                while any(
                    u["in_flight"] for u in json.loads((await gw.cli("ps", "--json")).stdout)["upstreams"]
                ):
                    await trio.sleep(0.1)
    assert await none_left(marker) == []
    assert audit_is_complete(tmp_path)[0]


async def test_a_client_that_never_reads_is_let_go_and_nobody_waits_for_it(tmp_path: Path) -> None:
    marker = f"wg-deaf-{tmp_path.name}"
    with trio.fail_after(120):
        async with calm_and_rude(tmp_path, marker, request_timeout=60) as (gw, calm, deaf):
            line = echo_line("y" * 8000)
            sending = trio.CancelScope()

            async def send_all() -> None:
                with sending:  # ~24 MB of answers it will never read; its sends stall in the end
                    await send_until_cut_off(deaf, line * 3000)

            gw.nursery.start_soon(send_all)
            log = tmp_path / "daemon.log"
            for n in range(3):
                for tool in ("ok__echo", "other__echo"):
                    echoed = await calm.call(f"{tool}{n}", tool, {"text": "unharmed"}, timeout=10)
                    assert echoed["result"]["content"][0]["text"] == "unharmed"
            with trio.fail_after(60):  # its output stayed full: the daemon lets it go
                while "does not read what it is sent" not in log.read_text():
                    await trio.sleep(0.1)
                while len(json.loads((await gw.cli("ps", "--json")).stdout)["clients"]) > 1:
                    await trio.sleep(0.1)
            sending.cancel()
            deaf.process.kill()  # its client is hung: attach itself waits on the full pipe until then
            echoed = await calm.call("after", "ok__echo", {"text": "still fine"}, timeout=10)
            assert echoed["result"]["content"][0]["text"] == "still fine"
    assert await none_left(marker) == []
    assert audit_is_complete(tmp_path)[0]
