"""The immutable records a supervisor takes in (specs) and hands out (statuses, events).

They are frozen so a snapshot given to ``ps`` or an event given to a logger
can never be mutated behind the supervisor's back, nor change under the reader.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from .policy import ChildState, RestartPolicy, RestartType

__all__ = ["ChildSpec", "ChildStatus", "EventKind", "SupervisorEvent"]

EventKind = Literal["starting", "started", "exited", "backoff", "failed", "stopped"]


@dataclass(frozen=True)
class ChildSpec:
    """What to run and how to restart it.

    ``start`` follows trio's ``nursery.start`` protocol: it is an async
    function taking ``task_status=``; the child is RUNNING once it calls
    ``task_status.started()``.  Returning is a normal exit, raising is an
    abnormal one.  ``Actor.run`` and ``Supervisor.run`` both fit.
    """

    name: str
    start: Callable[..., Awaitable[None]]
    policy: RestartPolicy = field(default_factory=RestartPolicy)


@dataclass(frozen=True)
class ChildStatus:
    """A snapshot of one child, for ``ps``-style listings."""

    name: str
    state: ChildState
    restarts: int
    last_exit: str | None
    started_at: float | None
    next_restart_at: float | None
    restart_type: RestartType


@dataclass(frozen=True)
class SupervisorEvent:
    """One lifecycle transition of one child, reported through ``on_event``."""

    supervisor: str
    child: str
    kind: EventKind
    reason: str | None = None
    delay: float | None = None
