"""Restart policy vocabulary, following Erlang/OTP supervisor semantics.

Everything here is immutable data plus pure arithmetic, so the supervisor can
share one policy between children and tests can check delays without running
anything.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import tenacity

__all__ = ["Backoff", "ChildState", "RestartPolicy", "RestartType", "Strategy"]


class RestartType(enum.StrEnum):
    """When a child that exited is restarted (OTP ``restart`` option)."""

    PERMANENT = "permanent"  # always
    TRANSIENT = "transient"  # only after an abnormal exit (an exception)
    TEMPORARY = "temporary"  # never, not even when a sibling's death restarts the group


class Strategy(enum.StrEnum):
    """Which siblings are restarted along with a dead child (OTP ``strategy``)."""

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class ChildState(enum.StrEnum):
    """Lifecycle of one child as shown by ``Supervisor.statuses()``."""

    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    FAILED = "failed"
    STOPPED = "stopped"


# tenacity's wait strategies only read ``attempt_number`` from the retry state;
# one shared Retrying object satisfies the constructor's type without ever
# being used to retry (we sleep with trio ourselves).
_RETRYING = tenacity.Retrying()


def _retry_state(attempt: int) -> tenacity.RetryCallState:
    state = tenacity.RetryCallState(retry_object=_RETRYING, fn=None, args=(), kwargs={})
    state.attempt_number = attempt + 1  # tenacity counts attempts from 1
    return state


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with proportional jitter before automatic restarts.

    Jitter is proportional to the base delay (rather than absolute) so that
    many children crashing together because a shared dependency went away
    spread their restarts over a window that grows with the backoff.
    """

    initial: float = 0.5
    max: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.initial < 0 or self.max < 0 or self.jitter < 0:
            raise ValueError("Backoff initial, max and jitter must be >= 0")
        if self.multiplier < 1:
            raise ValueError("Backoff multiplier must be >= 1")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before restart number ``attempt`` (0 = first restart)."""
        if attempt < 0:
            raise ValueError("attempt must be >= 0")
        state = _retry_state(attempt)
        base = tenacity.wait_exponential(multiplier=self.initial, max=self.max, exp_base=self.multiplier)(
            state
        )
        noise = tenacity.wait_random(0, self.jitter * base)(state)
        return min(self.max, base + noise)


@dataclass(frozen=True)
class RestartPolicy:
    """How one child is restarted.

    ``max_restarts`` restarts are allowed within any ``within_seconds`` window;
    one more sends the child to FAILED, where it stays until an operator calls
    ``restart_child``.  Unlike OTP the supervisor itself does not die: one bad
    upstream must not take its healthy siblings down with it.
    """

    restart: RestartType = RestartType.PERMANENT
    max_restarts: int = 5
    within_seconds: float = 60.0
    backoff: Backoff = field(default_factory=Backoff)
    reset_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError("max_restarts must be >= 0")
        if self.within_seconds <= 0:
            raise ValueError("within_seconds must be > 0")
        if self.reset_after < 0:
            raise ValueError("reset_after must be >= 0")

    def restarts_after(self, *, abnormal: bool) -> bool:
        """Whether an exit of this kind calls for a restart at all."""
        if self.restart is RestartType.PERMANENT:
            return True
        if self.restart is RestartType.TRANSIENT:
            return abnormal
        return False
