"""Audit entries for the lifecycle events the gateway sees, so every caller names them alike.

``watchgate audit tail`` and a SIEM group records by ``method``; if the upstream supervisor
said ``server_exited`` and the daemon said ``upstream crashed`` for the same thing, nobody
could count crashes. These helpers fix the names.
"""

from __future__ import annotations

from typing import Literal

from actors import SupervisorEvent
from watchgate.audit.record import AuditEntry

__all__ = ["Subject", "lifecycle_entry", "supervisor_entry"]

Subject = Literal["server", "client", "actor"]


def lifecycle_entry(
    name: str,
    *,
    server: str | None = None,
    client: str | None = None,
    reason: str | None = None,
) -> AuditEntry:
    """A ``lifecycle`` entry, e.g. ``client_attached``, ``client_detached``, ``config_reloaded``."""
    return AuditEntry(event="lifecycle", method=name, server=server, client=client, reason=reason)


def supervisor_entry(event: SupervisorEvent, *, subject: Subject) -> AuditEntry:
    """One supervisor transition: ``server_started``, ``server_exited`` (with the exit reason),
    ``server_backoff`` (with the restart delay), ``server_failed``, ``server_stopped``; likewise
    ``client_*`` and ``actor_*``. ``subject`` says what the supervisor's children are."""
    parts = [event.reason] if event.reason else []
    if event.delay is not None:
        parts.append(f"restart in {event.delay:.2f} s")
    if subject == "actor":
        parts.insert(0, f"{event.supervisor}/{event.child}")
    reason = "; ".join(parts) or None
    method = f"{subject}_{event.kind}"
    if subject == "server":
        return lifecycle_entry(method, server=event.child, reason=reason)
    if subject == "client":
        return lifecycle_entry(method, client=event.child, reason=reason)
    return lifecycle_entry(method, reason=reason)
