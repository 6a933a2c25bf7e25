"""Test helpers: a child the test can drive, an event recorder, a supervisor runner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
import trio.testing

from actors import Backoff, ChildSpec, RestartPolicy, RestartType, Supervisor, SupervisorEvent

# A policy with round numbers and no jitter, so tests can assert exact times.
NO_JITTER = Backoff(initial=1.0, max=8.0, multiplier=2.0, jitter=0.0)


def policy(restart: RestartType = RestartType.PERMANENT, **kwargs: object) -> RestartPolicy:
    kwargs.setdefault("backoff", NO_JITTER)
    return RestartPolicy(restart=restart, **kwargs)  # type: ignore[arg-type]


class Log(list[tuple[str, str]]):
    """Shared, ordered record of what the workers did."""

    def of(self, action: str) -> list[str]:
        return [name for act, name in self if act == action]


class Worker:
    """A child whose life the test drives: ``crash()``, ``finish()``, or failing starts."""

    def __init__(
        self,
        name: str,
        log: Log,
        *,
        start_delay: float = 0.0,
        failing_starts: int = 0,
        cleanup_delay: float = 0.0,
    ) -> None:
        self.name = name
        self.log = log
        self.start_delay = start_delay
        self.failing_starts = failing_starts
        self.cleanup_delay = cleanup_delay
        self.starts = 0
        self._exit = trio.Event()
        self._error: BaseException | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.starts += 1
        self.log.append(("start", self.name))
        if self.start_delay:
            await trio.sleep(self.start_delay)
        if self.failing_starts:
            self.failing_starts -= 1
            raise RuntimeError(f"{self.name} could not start")
        self._exit, self._error = trio.Event(), None
        task_status.started()
        try:
            await self._exit.wait()
        except trio.Cancelled:
            self.log.append(("cancelled", self.name))
            if self.cleanup_delay:
                with trio.CancelScope(shield=True):
                    await trio.sleep(self.cleanup_delay)
            raise
        if self._error is not None:
            self.log.append(("crash", self.name))
            raise self._error
        self.log.append(("return", self.name))

    def crash(self, exc: BaseException | None = None) -> None:
        self._error = exc if exc is not None else RuntimeError(f"{self.name} crashed")
        self._exit.set()

    def finish(self) -> None:
        self._exit.set()


class Recorder:
    """``on_event`` callback keeping every event."""

    def __init__(self) -> None:
        self.events: list[SupervisorEvent] = []

    def __call__(self, event: SupervisorEvent) -> None:
        self.events.append(event)

    def kinds(self, child: str | None = None) -> list[str]:
        return [e.kind for e in self.events if child is None or e.child == child]

    def pairs(self) -> list[tuple[str, str]]:
        return [(e.child, e.kind) for e in self.events]

    def clear(self) -> None:
        self.events.clear()


async def settle() -> None:
    """Let every task run until all are blocked (the mock clock does not move)."""
    await trio.testing.wait_all_tasks_blocked()


async def advance(seconds: float) -> None:
    """Move (mock) time forward, then let the supervisor react."""
    await trio.sleep(seconds)
    await trio.testing.wait_all_tasks_blocked()


def spec(worker: Worker, restart: RestartType = RestartType.PERMANENT, **kwargs: object) -> ChildSpec:
    return ChildSpec(worker.name, worker.run, policy(restart, **kwargs))


@asynccontextmanager
async def supervising(sup: Supervisor) -> AsyncIterator[trio.Nursery]:
    """Run ``sup`` for the duration of the block, then cancel it."""
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        yield nursery
        nursery.cancel_scope.cancel()
