"""The gateway over real pipes, as `watchgate run` has them: a stdio server and a client on
pipes. Over pipes, a lone call's request and answer skip the writers' mailboxes (outbox.py);
whatever a full pipe does not take must still arrive whole and in order."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio
import yaml

from watchgate.config import parse_config
from watchgate.gateway.tree import Gateway
from watchgate.wire.pipes import EagerPipeReceive, EagerPipeSend

from .fakes import Client

ECHO = [sys.executable, "-S", str(Path(__file__).resolve().parents[1] / "servers" / "echo_server.py")]


def pipe() -> tuple[EagerPipeReceive, EagerPipeSend]:
    r, w = os.pipe()
    return EagerPipeReceive(trio.lowlevel.FdStream(r)), EagerPipeSend(trio.lowlevel.FdStream(w))


@asynccontextmanager
async def gateway_on_pipes() -> AsyncIterator[tuple[Gateway, Client]]:
    config = parse_config(yaml.safe_dump({"proxy": {"upstreams": [{"name": "echo", "command": ECHO}]}}))
    gateway = Gateway(config)
    client_in_receive, client_in_send = pipe()
    client_out_receive, client_out_send = pipe()
    client = Client(client_in_send, client_out_receive)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(gateway.serve_stream, client_in_receive, client_out_send)
            nursery.start_soon(client.pump)
            await client.initialize()
            yield gateway, client
            nursery.cancel_scope.cancel()


async def test_lone_calls_one_after_another() -> None:
    async with gateway_on_pipes() as (gateway, client):
        for i in range(20):
            result = await client.result("tools/call", {"name": "echo", "arguments": {"text": f"n{i}"}})
            assert result["content"][0]["text"] == f"n{i}"
        assert gateway.router.view("echo").actor.in_flight == 0


async def test_messages_larger_than_a_pipe_arrive_whole_both_ways() -> None:
    text = "z" * 3_000_000  # more than the server's 1 MiB stdin pipe and the client's 64 KiB one
    async with gateway_on_pipes() as (_, client):
        result = await client.result("tools/call", {"name": "echo", "arguments": {"text": text}})
        assert result["content"][0]["text"] == text
        result = await client.result("tools/call", {"name": "big", "arguments": {"bytes": 500_000}})
        assert len(result["content"][0]["text"]) == 500_000
        result = await client.result("tools/call", {"name": "echo", "arguments": {"text": "after"}})
        assert result["content"][0]["text"] == "after"


async def test_many_calls_at_once() -> None:
    async with gateway_on_pipes() as (_, client):
        ids = [
            await client.start("tools/call", {"name": "echo", "arguments": {"text": f"c{i}"}})
            for i in range(64)
        ]
        for i, request_id in enumerate(ids):
            response = await client.response(request_id)
            assert response["result"]["content"][0]["text"] == f"c{i}"


async def test_a_client_that_stops_reading_ends_its_session() -> None:
    config = parse_config(yaml.safe_dump({"proxy": {"upstreams": [{"name": "echo", "command": ECHO}]}}))
    client_in_receive, client_in_send = pipe()
    client_out_receive, client_out_send = pipe()
    await client_out_receive.aclose()  # nobody will read the answer: writing it fails
    line = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}\n'
    await client_in_send.send_all(line)
    with trio.fail_after(30):
        await Gateway(config).serve_stream(client_in_receive, client_out_send)  # returns: session over
    await client_in_send.aclose()


async def test_large_and_small_answers_mixed_in_one_burst() -> None:
    async with gateway_on_pipes() as (_, client):
        calls = []
        for i in range(12):
            if i % 4 == 0:
                calls.append(
                    (
                        "big",
                        await client.start(
                            "tools/call", {"name": "big", "arguments": {"bytes": 200_000 + i}}
                        ),
                    )
                )
            else:
                calls.append(
                    (
                        "echo",
                        await client.start("tools/call", {"name": "echo", "arguments": {"text": f"s{i}"}}),
                    )
                )
        for i, (tool, request_id) in enumerate(calls):
            text = (await client.response(request_id))["result"]["content"][0]["text"]
            assert len(text) == 200_000 + i if tool == "big" else text == f"s{i}"


class _Router:
    async def tell(self, msg: object) -> None:
        pass

    async def route_now(self, client: object, msg: object) -> bool:
        return False


async def test_a_batch_keeps_its_order_around_a_large_answer() -> None:
    from watchgate.gateway.client import ClientActor
    from watchgate.protocol import jsonrpc
    from watchgate.wire.lines import LineChannel

    client_in_receive, client_in_send = pipe()
    out_receive, out_send = pipe()
    client = ClientActor(LineChannel(out_send, client_in_receive), router=_Router(), routes=_Router())  # type: ignore[arg-type]
    big = jsonrpc.decode(b'{"jsonrpc":"2.0","id":2,"result":"' + b"b" * 100_000 + b'"}')
    messages = [
        jsonrpc.result_response(1, {"n": 1}),
        jsonrpc.notification("x/y"),
        big,
        jsonrpc.result_response(3, {}),
    ]
    for msg in messages:  # queued before the writer runs: one batch
        await client.send(msg)
    expected = b"".join(bytes(jsonrpc.encode_line(m)) for m in messages)
    got = bytearray()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.run)
            while len(got) < len(expected):
                got += await out_receive.receive_some()
            await client_in_send.aclose()  # the client leaves: the session ends
    assert bytes(got) == expected
