"""``watchgate run``: one MCP client on this process's stdin and stdout, the whole tree for it.

stdout is the protocol: nothing else may ever be written to it, logs go to stderr. SIGINT and
SIGTERM end the session (its requests are cancelled upstream, the servers are stopped).
"""

from __future__ import annotations

import logging
import signal

import trio

from watchgate.audit import AuditActor
from watchgate.config.schema import GatewayConfig
from watchgate.gateway.tree import Gateway
from watchgate.protocol.identity import local_user
from watchgate.wire.pipes import eager_receive, eager_send, stdio_streams

__all__ = ["serve_stdio"]


async def serve_stdio(config: GatewayConfig, audit: AuditActor | None, profile: str | None = None) -> None:
    stdin, stdout = stdio_streams()
    gateway = Gateway(config, audit=audit)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_signal, nursery.cancel_scope)
        # the client is whoever runs this process: it started it
        await gateway.serve_stream(
            eager_receive(stdin), eager_send(stdout), profile=profile, principal=local_user()
        )
        nursery.cancel_scope.cancel()


async def _stop_on_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            logging.getLogger("watchgate").info("%s: shutting down", signal.Signals(signum).name)
            scope.cancel()
            return
