"""``GET /healthz``: the readiness a load balancer or Kubernetes asks for (docs/deployment.md).

200 while at least one upstream runs (``"status": "ready"``, or ``"degraded"`` when some do
not); 503 while none does (starting, restarting, failed). The body lists every upstream's
state as ``watchgate ps`` names it. It needs no token: it tells no more than up or down.
"""

from __future__ import annotations

import msgspec

from actors import ChildState
from watchgate.gateway.tree import Gateway

__all__ = ["health_report"]


def health_report(gateway: Gateway) -> tuple[int, bytes]:
    states: dict[str, str] = {}
    for child in gateway.upstream_supervisor.statuses():
        actor = gateway.upstreams.get(child.name)
        login = actor is not None and actor.needs_login and child.state != ChildState.RUNNING
        states[child.name] = "needs-login" if login else str(child.state)
    running = sum(state == str(ChildState.RUNNING) for state in states.values())
    verdict = "ready" if running == len(states) and states else "degraded" if running else "unavailable"
    body = msgspec.json.encode({"status": verdict, "upstreams": states})
    return (200 if running else 503), body
