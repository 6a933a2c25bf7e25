"""Clients over Streamable HTTP (design.md §5): both protocol eras on one endpoint.

The facade of a small package, one job a module:

- ``listener``: bind, serve with ``server/`` (h11 over trio streams), shut down with a grace;
- ``app``: the ASGI application: the endpoint's POST/GET/DELETE and ``/healthz``;
- ``guard``: who may talk to it (origin, bearer token, content type, size);
- ``session`` and ``sessions``: a client's conversation as a client actor's channel, and the
  legacy sessions (``Mcp-Session-Id``) of one listener;
- ``streams``: an SSE stream as an append-only log, so a dropped connection loses nothing;
- ``modern``: 2026-07-28 clients, one request at a time (what HTTP adds to the era: headers
  mirrored, statuses); ``request``: the channel of such a request's client actor, kept across
  an ``input_required`` round for its retry; ``listen``: their ``subscriptions/listen`` stream
  (the era itself is the client actor's, as on every transport: ``gateway/era/``);
- ``health`` and ``asgi``: the readiness report, and the few ASGI moves everything makes.
"""

from watchgate.listeners.http.listener import GRACE, HttpListener, serve_http

__all__ = ["GRACE", "HttpListener", "serve_http"]
