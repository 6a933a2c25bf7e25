"""Watchgate's HTTP/1.1 server: h11's state machine over trio streams, serving an ASGI app.

It replaced hypercorn's trio worker (ADR-032): for one small JSON POST answered at once,
hypercorn cost 3 to 4 times what trio and h11 cost alone, and that set the listener's ceiling. h11 does
all the parsing; this package moves bytes, keeps the limits (head size and time, idle time,
TLS handshake time), honours ``Expect: 100-continue``, tells the app when a client goes, and
shuts down gracefully. HTTP/2 is not spoken.
"""

from watchgate.listeners.http.server._connection import (
    BODY_TIMEOUT,
    HEAD_TIMEOUT,
    IDLE_TIMEOUT,
    MAX_HEAD,
    App,
    ClientDisconnected,
)
from watchgate.listeners.http.server._server import HttpServer, tls_context

__all__ = [
    "BODY_TIMEOUT",
    "HEAD_TIMEOUT",
    "IDLE_TIMEOUT",
    "MAX_HEAD",
    "App",
    "ClientDisconnected",
    "HttpServer",
    "tls_context",
]
