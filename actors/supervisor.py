"""An OTP-style supervisor: owns children, restarts them by policy.

Design: every lifecycle decision is taken while holding one `trio.Lock`, by
either the supervision loop (reacting to exits and backoff deadlines) or a
control method called from some other task.  That keeps the OTP rules --
which are all about *ordering* -- sequential and easy to follow, at the price
(shared with OTP) that a child with a hanging startup blocks the supervisor.

Children run in the supervisor's nursery, each inside its own shielded
cancel scope (hypercorn's TrioSingleTask pattern): stopping a child means
cancelling that scope and waiting for the task to finish.  The shield is what
lets shutdown stop children one at a time in reverse start order instead of
having the nursery's cancellation hit all of them at once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial

import trio

from ._child import Child, Incarnation, run_incarnation
from .errors import UnknownChild
from .policy import ChildState, RestartType, Strategy
from .spec import ChildSpec, ChildStatus, EventKind, SupervisorEvent

__all__ = ["ChildSpec", "ChildStatus", "Supervisor", "SupervisorEvent"]

logger = logging.getLogger("actors")

# Exits are queued by the dying child's task after it has set its ``done``
# event, so a full queue only delays bookkeeping, it never deadlocks a stop.
_EXIT_QUEUE_SIZE = 64


class Supervisor:
    """Starts children in order, restarts them per policy, stops them in reverse.

    The control methods (``restart_child`` and friends) may be called from any
    task while ``run()`` is running and return once their action has taken
    effect.  A child must not call them on itself: it should return or raise.
    """

    def __init__(
        self,
        name: str,
        children: Sequence[ChildSpec] = (),
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        on_event: Callable[[SupervisorEvent], None] | None = None,
        parallel_start: bool = False,
    ) -> None:
        self.name = name
        self.strategy = strategy
        self._on_event = on_event
        self._parallel_start = parallel_start
        self._children: list[Child] = []
        for spec in children:
            self._check_new_name(spec.name)
            self._children.append(Child(spec))
        self._lock = trio.Lock()
        self._nursery: trio.Nursery | None = None
        self._exits: trio.MemorySendChannel[Incarnation] | None = None
        self._closing = False

    # -- snapshots ---------------------------------------------------------

    def statuses(self) -> list[ChildStatus]:
        """Snapshots of all children, in list order."""
        return [child.status() for child in self._children]

    def status(self, name: str) -> ChildStatus:
        """Snapshot of one child; raises `UnknownChild`."""
        return self._lookup(name).status()

    def names(self) -> list[str]:
        """Child names, in list order."""
        return [child.name for child in self._children]

    # -- running -----------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the children, report started, then supervise until cancelled.

        On the way out -- cancellation or otherwise -- children are stopped in
        reverse list order before this returns.
        """
        if self._nursery is not None:
            raise RuntimeError(f"supervisor {self.name!r} is already running")
        send, receive = trio.open_memory_channel[Incarnation](_EXIT_QUEUE_SIZE)
        for child in self._children:
            child.intensity.reset()
        try:
            with send, receive:
                async with trio.open_nursery() as nursery:
                    self._nursery, self._exits, self._closing = nursery, send, False
                    try:
                        async with self._lock:
                            await self._start_initial()
                        task_status.started()
                        await self._supervise(receive)
                    finally:
                        self._closing = True
                        with trio.CancelScope(shield=True):
                            for child in reversed(self._children):
                                await self._stop_for_good(child)
        finally:
            self._nursery = self._exits = None

    async def _start_initial(self) -> None:
        if self._parallel_start:
            spawned = [(child, self._spawn(child)) for child in self._children]
            for child, inc in spawned:
                await self._settle(child, inc)
        else:
            for child in list(self._children):
                await self._settle(child, self._spawn(child))

    async def _supervise(self, exits: trio.MemoryReceiveChannel[Incarnation]) -> None:
        """Wait for an exit or the earliest backoff deadline, then act on it.

        Deadlines only ever appear because some incarnation died, and every
        death also queues its exit here, so after any change this loop wakes
        up and recomputes the deadline -- even when a control method already
        handled that death itself.
        """
        while True:
            inc: Incarnation | None = None
            with trio.move_on_at(self._next_deadline()):
                inc = await exits.receive()
            async with self._lock:
                if inc is not None:
                    child = next((c for c in self._children if c.current is inc), None)
                    if child is not None:
                        await self._on_exit(child, inc)
                await self._start_due()

    def _next_deadline(self) -> float:
        return min(
            (
                child.next_restart_at
                for child in self._children
                if child.state is ChildState.BACKOFF and child.next_restart_at is not None
            ),
            default=math.inf,
        )

    async def _start_due(self) -> None:
        """Start BACKOFF children whose deadline passed, in list order.

        The state is re-checked for each child because starting an earlier
        one may fail and push a later one's deadline back (rest_for_one).
        """
        now = trio.current_time()
        for child in list(self._children):
            due = child.next_restart_at
            if child.state is ChildState.BACKOFF and due is not None and due <= now:
                child.restarts += 1
                await self._settle(child, self._spawn(child))

    # -- child lifecycle primitives (caller holds the lock) ----------------

    def _spawn(self, child: Child) -> Incarnation:
        if self._nursery is None or self._exits is None or self._closing:
            raise RuntimeError(f"supervisor {self.name!r} is shutting down")
        inc = Incarnation()
        child.current, child.state, child.next_restart_at = inc, ChildState.STARTING, None
        self._emit(child, "starting")
        self._nursery.start_soon(
            run_incarnation,
            child.spec,
            inc,
            partial(self._on_started, child, inc),
            self._exits,
            name=f"{self.name}/{child.name}",
        )
        return inc

    def _on_started(self, child: Child, inc: Incarnation) -> None:
        """Runs synchronously inside the child's ``task_status.started()``."""
        inc.started_at = trio.current_time()
        child.state = ChildState.RUNNING
        self._emit(child, "started")
        inc.settled.set()

    async def _settle(self, child: Child, inc: Incarnation) -> None:
        """Wait until ``inc`` is RUNNING or dead; a death is handled right here."""
        await inc.settled.wait()
        if inc.done.is_set():
            await self._on_exit(child, inc)

    async def _stop(self, child: Child) -> None:
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
        self._emit(child, "exited", reason=inc.reason)

    async def _stop_for_good(self, child: Child) -> None:
        await self._stop(child)
        if child.state is not ChildState.STOPPED:
            child.state, child.next_restart_at = ChildState.STOPPED, None
            self._emit(child, "stopped")

    async def _on_exit(self, child: Child, inc: Incarnation) -> None:
        """Apply the restart policy to an exit nobody asked for."""
        if inc.handled or child.current is not inc:
            return
        inc.handled = True
        child.current, child.last_exit = None, inc.reason
        self._emit(child, "exited", reason=inc.reason)
        if inc.abnormal:
            logger.warning("%s/%s exited: %s", self.name, child.name, inc.reason)
        policy = child.spec.policy
        if self._closing or not policy.restarts_after(abnormal=inc.abnormal):
            await self._stop_for_good(child)
            return
        now = trio.current_time()
        ran_for = None if inc.started_at is None else now - inc.started_at
        delay = child.intensity.next_delay(now, ran_for)
        if delay is None:
            child.state = ChildState.FAILED
            logger.error("%s/%s restarted too often; giving up", self.name, child.name)
            self._emit(child, "failed", reason=inc.reason)
            return
        group = self._restart_group(child)
        for sibling in reversed(group):
            await self._stop(sibling)
        deadline = trio.current_time() + delay
        for member in group:
            if member is not child and member.spec.policy.restart is RestartType.TEMPORARY:
                await self._stop_for_good(member)
            else:
                member.state, member.next_restart_at = ChildState.BACKOFF, deadline
                self._emit(member, "backoff", delay=delay)

    def _restart_group(self, child: Child) -> list[Child]:
        """The dead child plus the siblings its strategy restarts with it."""
        if self.strategy is Strategy.ONE_FOR_ONE:
            return [child]
        candidates = self._children
        if self.strategy is Strategy.REST_FOR_ONE:
            candidates = candidates[candidates.index(child) :]
        return [c for c in candidates if c is child or c.current is not None or c.state is ChildState.BACKOFF]

    # -- control API -------------------------------------------------------

    async def restart_child(self, name: str) -> None:
        """Restart now, whatever the state; clears FAILED and the intensity window."""
        async with self._control(name) as child:
            await self._stop(child)
            child.intensity.reset()
            child.restarts += 1
            await self._settle(child, self._spawn(child))

    async def stop_child(self, name: str) -> None:
        """Stop the child; it stays STOPPED until `start_child` or `restart_child`."""
        async with self._control(name) as child:
            await self._stop_for_good(child)

    async def start_child(self, name: str) -> None:
        """Start a STOPPED or FAILED child (or a BACKOFF one, early); no-op if running."""
        async with self._control(name) as child:
            if child.state in (ChildState.STOPPED, ChildState.FAILED):
                child.intensity.reset()
            elif child.state is not ChildState.BACKOFF:
                return
            await self._settle(child, self._spawn(child))

    async def add_child(self, spec: ChildSpec) -> None:
        """Append a child and start it now; `ValueError` if the name is taken."""
        self._check_open()
        async with self._lock:
            self._check_open()
            self._check_new_name(spec.name)
            child = Child(spec)
            self._children.append(child)
            await self._settle(child, self._spawn(child))

    async def remove_child(self, name: str) -> None:
        """Stop the child and forget it."""
        async with self._control(name) as child:
            await self._stop_for_good(child)
            self._children.remove(child)

    # -- helpers -----------------------------------------------------------

    @asynccontextmanager
    async def _control(self, name: str) -> AsyncIterator[Child]:
        """Take the lock and yield the child, validating before and after queueing.

        Re-validation matters because the supervisor may have shut down, or the
        child been removed, while we waited for the lock.
        """
        self._check_open()
        self._lookup(name)
        async with self._lock:
            self._check_open()
            yield self._lookup(name)

    def _check_open(self) -> None:
        if self._nursery is None:
            raise RuntimeError(f"supervisor {self.name!r} is not running; call run() first")
        if self._closing:
            raise RuntimeError(f"supervisor {self.name!r} is shutting down")

    def _check_new_name(self, name: str) -> None:
        if any(child.name == name for child in self._children):
            raise ValueError(f"supervisor {self.name!r} already has a child named {name!r}")

    def _lookup(self, name: str) -> Child:
        for child in self._children:
            if child.name == name:
                return child
        raise UnknownChild(name, self.names())

    def _emit(
        self,
        child: Child,
        kind: EventKind,
        *,
        reason: str | None = None,
        delay: float | None = None,
    ) -> None:
        if self._on_event is None:
            return
        event = SupervisorEvent(self.name, child.name, kind, reason, delay)
        try:
            self._on_event(event)
        except Exception:
            logger.exception("on_event callback of supervisor %r failed on %r", self.name, event)

    def __repr__(self) -> str:
        return f"<Supervisor {self.name!r} {self.strategy} children={self.names()}>"
