"""The web console: a page for a person to look at the gateway and act on it (ADR-031).

``app``: its HTTP side (the page, its script and style from ``static/``, a JSON API for the
servers, clients, held calls and the audit log, and the actions: restart/stop/start a server,
approve/deny a held call), served by the HTTP listener at ``/console``.
"""

from watchgate.listeners.http.console.app import PREFIX, Console

__all__ = ["PREFIX", "Console"]
