"""The HTTP listener's floor: hypercorn's trio worker with an ASGI app that answers at once.

Run as ``python httpfloor.py PORT``. Each POSTed request is answered with a JSON result under
its own id (a notification with 202), with no gateway behind it: what any MCP endpoint served
by hypercorn on trio costs a call before it does any work. Whatever the gateway's HTTP arm
costs above this is Watchgate's own.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial
from typing import Any

import msgspec
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
_RESULT = {"content": [{"type": "text", "text": "hello"}], "protocolVersion": "2025-11-25"}


async def app(scope: Message, receive: Receive, send: Send) -> None:
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
    request = msgspec.json.decode(body)
    if "id" not in request:
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    answer = msgspec.json.encode({"jsonrpc": "2.0", "id": request["id"], "result": _RESULT})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


async def _terminated() -> None:
    """hypercorn's shutdown trigger: SIGTERM (how the benchmark ends an arm) ends it cleanly."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            return


def main() -> None:
    config = Config()
    config.bind = [f"127.0.0.1:{int(sys.argv[1])}"]
    config.accesslog = None
    # hypercorn names its own TypedDicts; the app speaks the same ASGI in plain mappings
    trio.run(partial(serve, app, config, shutdown_trigger=_terminated))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
