"""The HTTP floors: a server that answers every MCP POST at once, with no gateway behind it.

Run as ``python httpfloor.py PORT [h11|hypercorn|uvicorn]``. Each POSTed request is answered
with a JSON result under its own id (a notification with 202): what an MCP endpoint costs a call
on that server before it does any work. ``h11`` is the runtime's floor — trio's streams and the
h11 state machine with nothing between them and the answer; ``hypercorn`` is hypercorn's trio
worker with an ASGI app; ``uvicorn`` (asyncio) is there for reference. Whatever the gateway's
HTTP arm costs above the ``h11`` floor is Watchgate's own.
"""

from __future__ import annotations

import importlib
import signal
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial
from typing import Any

import h11
import msgspec
import trio

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
_RESULT = {"content": [{"type": "text", "text": "hello"}], "protocolVersion": "2025-11-25"}


def answer(body: bytes) -> tuple[int, bytes]:
    request = msgspec.json.decode(body)
    if "id" not in request:
        return 202, b""
    return 200, msgspec.json.encode({"jsonrpc": "2.0", "id": request["id"], "result": _RESULT})


async def app(scope: Message, receive: Receive, send: Send) -> None:
    """The ASGI floor (hypercorn, uvicorn)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    status, data = answer(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _h11_connection(stream: trio.SocketStream) -> None:
    """One keep-alive connection on trio + h11: read a request, answer it, start over."""
    conn = h11.Connection(h11.SERVER)
    body = b""
    async with stream:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:  # a load generator resets its connections at the end
                    return
                conn.receive_data(data)
                if not data:
                    return
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                status, data = answer(body)
                body = b""
                headers = [("content-type", "application/json"), ("content-length", str(len(data)))]
                out = conn.send(h11.Response(status_code=status, headers=headers))
                await stream.send_all(out + conn.send(h11.Data(data=data)) + conn.send(h11.EndOfMessage()))
                if conn.our_state is not h11.DONE:
                    return
                conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed | h11.PAUSED):
                return


async def _serve_h11(port: int) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(trio.serve_tcp, _h11_connection, port, host="127.0.0.1"))
        await _terminated()
        nursery.cancel_scope.cancel()


async def _terminated() -> None:
    """How the benchmark ends an arm: SIGTERM (or SIGINT) ends it cleanly."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            return


def main() -> None:
    port = int(sys.argv[1])
    server = sys.argv[2] if len(sys.argv) > 2 else "h11"
    if server == "h11":
        trio.run(_serve_h11, port)
    elif server == "hypercorn":  # the bench extra's (make bench)
        config = importlib.import_module("hypercorn.config").Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.accesslog = None
        serve = importlib.import_module("hypercorn.trio").serve
        trio.run(partial(serve, app, config, shutdown_trigger=_terminated))
    elif server == "uvicorn":
        uvicorn = importlib.import_module("uvicorn")
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")
    else:
        sys.exit(f"unknown server {server!r} (h11, hypercorn or uvicorn)")


if __name__ == "__main__":
    main()
