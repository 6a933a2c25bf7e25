"""Rate-limit buckets every replica shares (``proxy.state: {redis: URL}``): Redis or Valkey.

Behind a load balancer each Watchgate replica would otherwise count a caller's calls on its own,
so N replicas let a caller make N times its limit. With ``proxy.state.redis`` the token buckets
live in Redis, each taken in one atomic script (read, refill, take, write, expire), so replicas
agree. The clock is the callers' wall clock (passed into the script: replicas' clocks are kept in
step by NTP; a skew of a second lends or borrows that second's refill).

The client is redis-py's synchronous one, run in a worker thread (it has no trio flavour; its
connection pool is thread-safe). A Redis that does not answer within a second must not take the
gateway down with it: that call is counted in this process instead (`SharedStateDown`, logged
once a minute), and the next call tries Redis again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

import trio

__all__ = ["SharedBuckets", "SharedStateDown"]

_TAKE: Final = """
local capacity = tonumber(ARGV[1])
local per = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local refill = capacity / per
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * refill)
local wait = -1
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / refill end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(per) + 1)
return tostring(wait)
"""
_TIMEOUT: Final = 1.0  # seconds for a connect or an answer
_SAY_AGAIN_AFTER: Final = 60.0
_log = logging.getLogger("watchgate.router")


class SharedStateDown(Exception):
    """Redis did not answer: the caller counts this call locally."""


class SharedBuckets:
    def __init__(self, url: str, clock: Callable[[], float] = time.time) -> None:
        import redis  # only a config with proxy.state.redis pays for the import

        self.url = url
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self._redis: Any = redis.Redis.from_url(url, socket_timeout=_TIMEOUT, socket_connect_timeout=_TIMEOUT)
        self._script = self._redis.register_script(_TAKE)
        self._clock = clock
        self._said_at: float | None = None

    async def take(self, key: str, calls: int, per: float) -> float | None:
        """One token of ``key``'s bucket: None if there was one, else the seconds until one is."""
        now = self._clock()
        try:
            wait = await trio.to_thread.run_sync(self._take, key, calls, per, now, abandon_on_cancel=True)
        except self._errors as exc:
            at = trio.current_time()
            if self._said_at is None or at - self._said_at >= _SAY_AGAIN_AFTER:
                self._said_at = at
                _log.warning(
                    "proxy.state.redis does not answer (%s): rate limits are counted in this process "
                    "until it does",
                    type(exc).__name__,
                )
            raise SharedStateDown from None
        return None if wait < 0 else wait

    def _take(self, key: str, calls: int, per: float, now: float) -> float:
        return float(self._script(keys=[key], args=[calls, per, repr(now)]))

    async def aclose(self) -> None:
        await trio.to_thread.run_sync(self._redis.close)
