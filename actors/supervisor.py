"""An OTP-style supervisor: owns children, restarts them by policy.

Design: every lifecycle decision is taken while holding one `trio.Lock`, by
either the supervision loop (reacting to exits and backoff deadlines) or a
control method called from some other task.  That keeps the OTP rules (in
`actors._engine`) sequential and easy to follow, at the price -- shared with
OTP -- that a child whose startup hangs blocks its supervisor.

Children run in the supervisor's nursery, each inside its own shielded
cancel scope (hypercorn's TrioSingleTask pattern): stopping a child means
cancelling that scope and waiting for the task to finish.  The shield is what
lets shutdown stop children one at a time in reverse start order instead of
having the nursery's cancellation hit all of them at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import trio

from ._child import Child, Incarnation
from ._engine import Engine
from .policy import ChildState, Strategy
from .spec import ChildSpec, ChildStatus, SupervisorEvent

__all__ = ["ChildSpec", "ChildStatus", "Supervisor", "SupervisorEvent"]

# Exits are queued by the dying child's task after it has set its ``done``
# event, so a full queue only delays bookkeeping, it never deadlocks a stop.
_EXIT_QUEUE_SIZE = 64


class Supervisor:
    """Starts children in order, restarts them per policy, stops them in reverse.

    The control methods (``restart_child`` and friends) may be called from any
    task while ``run()`` is running and return once their action has taken
    effect.  A child must not call them on itself (it should return or raise
    instead), nor call them while it is still starting up.
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
        self._parallel_start = parallel_start
        self._engine = Engine(name, children, strategy, on_event)
        self._lock = trio.Lock()

    # -- snapshots ---------------------------------------------------------

    def statuses(self) -> list[ChildStatus]:
        """Snapshots of all children, in list order."""
        return [child.status() for child in self._engine.children]

    def status(self, name: str) -> ChildStatus:
        """Snapshot of one child; raises `UnknownChild`."""
        return self._engine.lookup(name).status()

    def names(self) -> list[str]:
        """Child names, in list order."""
        return self._engine.names()

    # -- running -----------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the children, report started, then supervise until cancelled.

        On the way out -- cancellation or otherwise -- children are stopped in
        reverse list order before this returns.
        """
        engine = self._engine
        if engine.nursery is not None:
            raise RuntimeError(f"supervisor {self.name!r} is already running")
        send, receive = trio.open_memory_channel[Incarnation](_EXIT_QUEUE_SIZE)
        for child in engine.children:
            child.intensity.reset()  # a new run, like a new OTP supervisor process
        try:
            with send, receive:
                async with trio.open_nursery() as nursery:
                    engine.nursery, engine.exits, engine.closing = nursery, send, False
                    try:
                        async with self._lock:
                            await self._start_initial()
                        task_status.started()
                        await self._supervise(receive)
                    finally:
                        await engine.shutdown()
        finally:
            engine.nursery = engine.exits = None

    async def _start_initial(self) -> None:
        """Start children in list order; a death here is just an early exit."""
        engine = self._engine
        if self._parallel_start:
            spawned = [(child, engine.spawn(child)) for child in engine.children]
            for child, inc in spawned:
                await engine.settle(child, inc)
        else:
            for child in list(engine.children):
                await engine.start(child)

    async def _supervise(self, exits: trio.MemoryReceiveChannel[Incarnation]) -> None:
        """Wait for an exit or the earliest backoff deadline, then act on it.

        Deadlines only ever appear because some incarnation died, and every
        death also queues its exit here, so after any change this loop wakes
        up and recomputes the deadline -- even when a control method already
        handled that death itself.
        """
        engine = self._engine
        while True:
            inc: Incarnation | None = None
            with trio.move_on_at(engine.next_deadline()):
                inc = await exits.receive()
            async with self._lock:
                if inc is not None and (child := engine.owner(inc)) is not None:
                    await engine.on_exit(child, inc)
                await engine.start_due()

    # -- control API -------------------------------------------------------

    async def restart_child(self, name: str) -> None:
        """Restart now, whatever the state; clears FAILED and the intensity window."""
        async with self._control(name) as child:
            await self._engine.stop(child)
            child.intensity.reset()
            child.restarts += 1
            await self._engine.start(child)

    async def stop_child(self, name: str) -> None:
        """Stop the child; it stays STOPPED until `start_child` or `restart_child`."""
        async with self._control(name) as child:
            await self._engine.stop_for_good(child)

    async def start_child(self, name: str) -> None:
        """Start a STOPPED or FAILED child (or a BACKOFF one, early); no-op if running."""
        async with self._control(name) as child:
            if child.state in (ChildState.STOPPED, ChildState.FAILED):
                child.intensity.reset()
            elif child.state is not ChildState.BACKOFF:
                return
            await self._engine.start(child)

    async def add_child(self, spec: ChildSpec) -> None:
        """Append a child and start it now; `ValueError` if the name is taken."""
        self._check_open()
        async with self._lock:
            self._check_open()
            await self._engine.start(self._engine.add(spec))

    async def remove_child(self, name: str) -> None:
        """Stop the child and forget it."""
        async with self._control(name) as child:
            await self._engine.stop_for_good(child)
            self._engine.children.remove(child)

    @asynccontextmanager
    async def _control(self, name: str) -> AsyncIterator[Child]:
        """Take the lock and yield the child, validating before and after queueing.

        Re-validation matters because the supervisor may have shut down, or the
        child been removed, while we waited for the lock.
        """
        self._check_open()
        self._engine.lookup(name)
        async with self._lock:
            self._check_open()
            yield self._engine.lookup(name)

    def _check_open(self) -> None:
        if self._engine.nursery is None:
            raise RuntimeError(f"supervisor {self.name!r} is not running; call run() first")
        if self._engine.closing:
            raise RuntimeError(f"supervisor {self.name!r} is shutting down")

    def __repr__(self) -> str:
        return f"<Supervisor {self.name!r} {self.strategy} children={self.names()}>"
