"""Which transport opens an upstream: the connector for its ``transport`` and ``protocol``
(the seam the connectors return is ``base.py``'s)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from watchgate.config.schema import Transport
from watchgate.transports.base import Connector, UpstreamConnection
from watchgate.transports.http import http_connector, sse_connector
from watchgate.transports.stdio import stdio_connector
from watchgate.transports.websocket import websocket_connector

if TYPE_CHECKING:
    from watchgate.config.schema import UpstreamConfig

__all__ = ["default_connector"]


def default_connector(config: UpstreamConfig) -> AbstractAsyncContextManager[UpstreamConnection]:
    """Pick the transport's connector."""
    connectors: dict[Transport, Connector] = {
        Transport.STDIO: stdio_connector,
        Transport.HTTP: http_connector,
        Transport.SSE: sse_connector,
        Transport.WEBSOCKET: websocket_connector,
    }
    if config.transport is Transport.STDIO and config.protocol == "modern":
        from watchgate.transports.modern_stdio import modern_stdio_connector

        return modern_stdio_connector(config)
    if config.transport is Transport.STDIO and config.protocol == "auto":
        from watchgate.transports.dual_stdio import dual_stdio_connector

        return dual_stdio_connector(config)
    return connectors[config.transport](config)
