"""Runtime state of one supervised child and the task boundary around it.

Private: the supervisor is the only writer.  The task boundary lives here
because it is the one place where a child's exception is turned into an exit
reason, so nothing a child raises can reach the supervisor's nursery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from .intensity import RestartIntensity
from .policy import ChildState
from .spec import ChildSpec, ChildStatus

__all__ = ["Child", "Incarnation", "run_incarnation"]


@dataclass(eq=False)
class Incarnation:
    """One run of a child's ``start`` function.

    The cancel scope is shielded: cancelling the supervisor must not tear all
    children down at once, because OTP stops them one by one in reverse start
    order.  Only the supervisor cancels this scope, explicitly.
    """

    scope: trio.CancelScope = field(default_factory=lambda: trio.CancelScope(shield=True))
    settled: trio.Event = field(default_factory=trio.Event)  # started, or exited first
    done: trio.Event = field(default_factory=trio.Event)
    task: trio.lowlevel.Task | None = None
    started_at: float | None = None
    reason: str = "killed"  # overwritten unless a BaseException tears the task down
    abnormal: bool = False
    stop_requested: bool = False
    handled: bool = False  # the supervisor has accounted for this exit


class _StartedStatus:
    """Stands in for trio's task status so the child's task lives in our nursery.

    With a real ``nursery.start`` a child dying before ``started()`` would turn
    into an exception in the supervisor; here it is simply an early exit.
    """

    def __init__(self, on_started: Callable[[], None]) -> None:
        self._on_started: Callable[[], None] | None = on_started

    def started(self, value: object = None) -> None:
        if self._on_started is None:
            raise RuntimeError("called 'started' twice on the same task status")
        on_started, self._on_started = self._on_started, None
        on_started()


async def run_incarnation(
    spec: ChildSpec,
    inc: Incarnation,
    on_started: Callable[[], None],
    exits: trio.MemorySendChannel[Incarnation],
) -> None:
    """Run one incarnation and report its exit; never lets an Exception escape.

    ``done``/``settled`` are set before the exit is queued: whoever is waiting
    to stop this child must not depend on the supervisor draining its queue.
    """
    inc.task = trio.lowlevel.current_task()
    try:
        try:
            with inc.scope:
                await spec.start(task_status=_StartedStatus(on_started))
        except Exception as exc:
            inc.reason = f"{type(exc).__name__}: {exc}"
            inc.abnormal = True
        else:
            inc.reason = "shutdown" if inc.stop_requested else "normal"
    finally:
        inc.done.set()
        inc.settled.set()
    await exits.send(inc)


class Child:
    """Mutable bookkeeping for one child; `status` freezes it into a snapshot."""

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.state = ChildState.STOPPED
        self.restarts = 0
        self.last_exit: str | None = None
        self.next_restart_at: float | None = None
        self.intensity = RestartIntensity(spec.policy)
        self.current: Incarnation | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def status(self) -> ChildStatus:
        current = self.current
        return ChildStatus(
            name=self.spec.name,
            state=self.state,
            restarts=self.restarts,
            last_exit=self.last_exit,
            started_at=current.started_at if current is not None else None,
            next_restart_at=self.next_restart_at,
            restart_type=self.spec.policy.restart,
        )
