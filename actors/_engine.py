"""The OTP rules of one supervisor: which child starts, stops or waits, and when.

Private to `actors.supervisor`, which owns the task plumbing (the nursery, the
supervision loop, the lock) and the public API.  Every method here assumes
the caller holds the supervisor's lock, so the rules -- which are all about
*ordering* -- read as straight-line code.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from functools import partial

import trio

from ._child import Child, Incarnation, run_incarnation
from .errors import UnknownChild
from .policy import ChildState, RestartType, Strategy
from .spec import ChildSpec, EventKind, SupervisorEvent

__all__ = ["Engine"]

logger = logging.getLogger("actors")


class Engine:
    """Children of one supervisor, and the transitions between their states."""

    def __init__(
        self,
        name: str,
        specs: Sequence[ChildSpec],
        strategy: Strategy,
        on_event: Callable[[SupervisorEvent], None] | None,
    ) -> None:
        self.name = name
        self.strategy = strategy
        self.on_event = on_event
        self.children: list[Child] = []
        for spec in specs:
            self.add(spec)
        # Set by Supervisor.run for the duration of one run.
        self.nursery: trio.Nursery | None = None
        self.exits: trio.MemorySendChannel[Incarnation] | None = None
        self.closing = False

    # -- the child table ---------------------------------------------------

    def names(self) -> list[str]:
        return [child.name for child in self.children]

    def lookup(self, name: str) -> Child:
        for child in self.children:
            if child.name == name:
                return child
        raise UnknownChild(name, self.names())

    def add(self, spec: ChildSpec) -> Child:
        if any(child.name == spec.name for child in self.children):
            raise ValueError(f"supervisor {self.name!r} already has a child named {spec.name!r}")
        child = Child(spec)
        self.children.append(child)
        return child

    def owner(self, inc: Incarnation) -> Child | None:
        """The child ``inc`` belongs to, or None if its exit was already accounted for."""
        return next((c for c in self.children if c.current is inc), None)

    def next_deadline(self) -> float:
        """The earliest pending restart, for the supervision loop to sleep until."""
        return min(
            (
                child.next_restart_at
                for child in self.children
                if child.state is ChildState.BACKOFF and child.next_restart_at is not None
            ),
            default=math.inf,
        )

    # -- starting ----------------------------------------------------------

    async def start(self, child: Child) -> None:
        """Start ``child`` and return once it is RUNNING or has died (and been handled)."""
        await self.settle(child, self.spawn(child))

    def spawn(self, child: Child) -> Incarnation:
        if self.nursery is None or self.exits is None or self.closing:
            raise RuntimeError(f"supervisor {self.name!r} is shutting down")
        inc = Incarnation()
        self.nursery.start_soon(
            run_incarnation,
            child.spec,
            inc,
            partial(self._on_started, child, inc),
            self.exits,
            name=f"{self.name}/{child.name}",
        )
        # The task only runs at our next checkpoint, so "starting" still comes
        # first; and ``current`` never points at an incarnation without a task.
        child.current, child.state, child.next_restart_at = inc, ChildState.STARTING, None
        self.emit(child, "starting")
        return inc

    def _on_started(self, child: Child, inc: Incarnation) -> None:
        """Runs synchronously inside the child's ``task_status.started()``."""
        inc.started_at = trio.current_time()
        child.state = ChildState.RUNNING
        self.emit(child, "started")
        inc.settled.set()

    async def settle(self, child: Child, inc: Incarnation) -> None:
        """Wait until ``inc`` is RUNNING or dead; a death is handled right here."""
        await inc.settled.wait()
        if inc.done.is_set():
            await self.on_exit(child, inc)

    async def start_due(self) -> None:
        """Start BACKOFF children whose deadline passed, in list order.

        The state is re-checked for each child because starting an earlier
        one may fail and push a later one's deadline back (rest_for_one).
        """
        now = trio.current_time()
        for child in list(self.children):
            due = child.next_restart_at
            if child.state is ChildState.BACKOFF and due is not None and due <= now:
                child.restarts += 1
                await self.start(child)

    # -- stopping ----------------------------------------------------------

    async def stop(self, child: Child) -> None:
        """Cancel the child's current incarnation, if any, and wait for it to end.

        Leaves ``state`` to the caller, which knows what comes next.
        """
        inc = child.current
        if inc is None:
            return
        if trio.lowlevel.current_task() is inc.task:
            raise RuntimeError(f"child {child.name!r} cannot stop itself; return or raise instead")
        inc.stop_requested = inc.handled = True
        inc.scope.cancel()
        with trio.CancelScope(shield=True):
            await inc.done.wait()
        if child.current is not inc:  # a concurrent stop already did the bookkeeping
            return
        child.current, child.last_exit = None, inc.reason
        self.emit(child, "exited", reason=inc.reason)

    async def stop_for_good(self, child: Child) -> None:
        """Stop the child and leave it STOPPED: no automatic restart."""
        await self.stop(child)
        if child.state is not ChildState.STOPPED:
            child.state, child.next_restart_at = ChildState.STOPPED, None
            self.emit(child, "stopped")

    async def shutdown(self) -> None:
        """Stop every child, one at a time, in reverse list order."""
        self.closing = True
        try:
            with trio.CancelScope(shield=True):
                for child in reversed(self.children):
                    await self.stop_for_good(child)
        finally:
            # Children are only left here if the orderly stop itself raised
            # (e.g. KeyboardInterrupt).  Their scopes are shielded, so without
            # this the nursery would wait for them forever.
            for child in self.children:
                if child.current is not None:
                    child.current.scope.cancel()

    # -- the restart decision ----------------------------------------------

    async def on_exit(self, child: Child, inc: Incarnation) -> None:
        """Apply the restart policy to an exit nobody asked for."""
        if inc.handled or child.current is not inc:
            return
        inc.handled = True
        child.current, child.last_exit = None, inc.reason
        self.emit(child, "exited", reason=inc.reason)
        if inc.abnormal:  # an owner that takes the events reports them itself: said once
            logger.log(self._level(logging.WARNING), "%s/%s exited: %s", self.name, child.name, inc.reason)
        if self.closing or not child.spec.policy.restarts_after(abnormal=inc.abnormal):
            await self.stop_for_good(child)
            return
        now = trio.current_time()
        ran_for = None if inc.started_at is None else now - inc.started_at
        delay = child.intensity.next_delay(now, ran_for)
        if delay is None:
            child.state = ChildState.FAILED
            logger.log(
                self._level(logging.ERROR), "%s/%s restarted too often; giving up", self.name, child.name
            )
            self.emit(child, "failed", reason=inc.reason)
            return
        group = self._restart_group(child)
        for sibling in reversed(group):
            await self.stop(sibling)
        deadline = trio.current_time() + delay
        for member in group:
            if member is not child and member.spec.policy.restart is RestartType.TEMPORARY:
                await self.stop_for_good(member)
            else:
                member.state, member.next_restart_at = ChildState.BACKOFF, deadline
                self.emit(member, "backoff", delay=delay)

    def _restart_group(self, child: Child) -> list[Child]:
        """The dead child plus the live or pending siblings its strategy restarts with it."""
        if self.strategy is Strategy.ONE_FOR_ONE:
            return [child]
        candidates = self.children
        if self.strategy is Strategy.REST_FOR_ONE:
            candidates = candidates[candidates.index(child) :]
        return [c for c in candidates if c is child or c.current is not None or c.state is ChildState.BACKOFF]

    # -- reporting ---------------------------------------------------------

    def _level(self, level: int) -> int:
        return logging.DEBUG if self.on_event is not None else level

    def emit(
        self,
        child: Child,
        kind: EventKind,
        *,
        reason: str | None = None,
        delay: float | None = None,
    ) -> None:
        """Report one transition; a broken callback is logged, never fatal."""
        if self.on_event is None:
            return
        event = SupervisorEvent(self.name, child.name, kind, reason, delay)
        try:
            self.on_event(event)
        except Exception:
            logger.exception("on_event callback of supervisor %r failed on %r", self.name, event)
