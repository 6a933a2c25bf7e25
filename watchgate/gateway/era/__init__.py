"""The 2026-07-28 era toward clients: the client-side era layer, on every transport.

The facade of a small package, one job a module:

- ``_adapter``: `ModernEra`, what that era asks of one client actor, called at four points
  of its message path (a request with the era's mark, a message on its way out, a
  cancellation, a broadcast);
- ``_rounds``: a legacy server's questions as ``input_required`` rounds of the calls they
  belong to, the retries that answer them, and their expiry (``PARK_SECONDS``);
- ``_listening``: ``subscriptions/listen``: the filter, the upstream subscriptions, the
  acknowledgment and the tagged notifications.

The HTTP listener adds only what is HTTP's (``listeners/http/modern.py``: headers mirrored,
statuses); the rules of the era themselves are ``protocol/eras.py``.
"""

from watchgate.gateway.era._adapter import ModernEra
from watchgate.gateway.era._rounds import PARK_SECONDS, ClientRounds, Resumed

__all__ = ["PARK_SECONDS", "ClientRounds", "ModernEra", "Resumed"]
