"""Per-child restart bookkeeping: the intensity window and the backoff attempt.

Kept apart from the supervisor so the OTP arithmetic (sliding window, counter
reset after a long healthy run) can be read and tested without any tasks.
"""

from __future__ import annotations

from collections import deque

from .policy import RestartPolicy

__all__ = ["RestartIntensity"]


class RestartIntensity:
    """Decides whether a child may be restarted again, and after what delay.

    Times are whatever clock the caller passes in; the supervisor passes
    ``trio.current_time()`` so the whole thing runs under a mock clock.
    """

    def __init__(self, policy: RestartPolicy) -> None:
        self._policy = policy
        self._restarts: deque[float] = deque()
        self.attempt = 0

    def reset(self) -> None:
        """Forget the window and the attempt counter (an operator intervened)."""
        self._restarts.clear()
        self.attempt = 0

    def next_delay(self, now: float, ran_for: float | None) -> float | None:
        """Record one more automatic restart at ``now`` and return its backoff delay.

        ``ran_for`` is how long the dead incarnation was RUNNING (None if it
        never got there).  Returns None, recording nothing, when the restart
        would exceed ``max_restarts`` within ``within_seconds``.
        """
        policy = self._policy
        if ran_for is not None and ran_for >= policy.reset_after:
            self.attempt = 0
        horizon = now - policy.within_seconds
        while self._restarts and self._restarts[0] <= horizon:
            self._restarts.popleft()
        if len(self._restarts) >= policy.max_restarts:
            return None
        self._restarts.append(now)
        delay = policy.backoff.delay(self.attempt)
        self.attempt += 1
        return delay
