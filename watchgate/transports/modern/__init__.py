"""The 2026-07-28 ("modern", stateless) era toward servers: the upstream-side era layer.

The facade of a small package, one job a module:

- ``_connection``: `ModernConnection`, the era toward one server over any `ModernWire` (the
  HTTP and stdio transports' three verbs): the ``server/discover`` probe, the answers given
  here, retries of ``input_required`` rounds, which ``subscriptions/listen`` is open;
- ``_session``: `ModernSession`, the translation of each message (no I/O): ``_meta`` and
  headers, what this era has no method for, the listen filter and its events;
- ``_rounds``: ``input_required`` rounds answered by clients of the ``initialize`` era;
- ``_headers``: the ``x-mcp-header`` annotations of tools.
"""

from watchgate.transports.modern._connection import ModernConnection, ModernWire, subscription_of
from watchgate.transports.modern._headers import header_paths, header_value
from watchgate.transports.modern._session import (
    MODERN,
    Cancel,
    Kept,
    ModernSession,
    Send,
    as_object,
    supported_versions,
)

__all__ = [
    "MODERN",
    "Cancel",
    "Kept",
    "ModernConnection",
    "ModernSession",
    "ModernWire",
    "Send",
    "as_object",
    "header_paths",
    "header_value",
    "subscription_of",
    "supported_versions",
]
