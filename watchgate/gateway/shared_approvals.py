"""Held calls every replica lists and decides (``proxy.state: {redis: URL}``).

Behind a load balancer a call is held by the replica that received it, but a person may be
looking at any replica's console or CLI. Each replica writes the calls it holds to Redis (a key
each, ``watchgate:approval:ID``, expiring with the call's timeout) and removes them once decided;
a listing reads every replica's. Deciding a call another replica holds writes a decision key
(``watchgate:decision:ID``); the holder reads the decisions for its calls twice a second while
it holds any, and decides them as if they had been made there. No pub/sub connection, no extra
thread: redis-py's synchronous client in a worker thread, as for the shared rate limits. A
Redis that does not answer leaves each replica its own calls (logged once a minute).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any, Final

import msgspec
import trio

__all__ = ["POLL_EVERY", "SharedApprovals"]

POLL_EVERY: Final = 0.5  # seconds between looks for decisions made on other replicas
_HELD: Final = "watchgate:approval:"
_DECIDED: Final = "watchgate:decision:"
_TIMEOUT: Final = 1.0
_SAY_AGAIN_AFTER: Final = 60.0
_log = logging.getLogger("watchgate.approvals")


class SharedApprovals:
    def __init__(self, url: str) -> None:
        import redis  # only a config with proxy.state.redis pays for the import

        self.url = url
        self.replica = f"{socket.gethostname()}:{os.getpid()}"
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self._redis: Any = redis.Redis.from_url(url, socket_timeout=_TIMEOUT, socket_connect_timeout=_TIMEOUT)
        self._said_at: float | None = None

    async def publish(self, listing: dict[str, Any], ttl: float) -> None:
        entry = msgspec.json.encode({**listing, "replica": self.replica})
        await self._run(lambda: self._redis.set(_HELD + listing["id"], entry, ex=max(1, int(ttl) + 1)), None)

    async def withdraw(self, approval: str) -> None:
        await self._run(lambda: self._redis.delete(_HELD + approval, _DECIDED + approval), None)

    async def listing(self) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            keys = list(self._redis.scan_iter(match=_HELD + "*", count=500))
            values = self._redis.mget(keys) if keys else []
            return [msgspec.json.decode(v) for v in values if v is not None]

        found: list[dict[str, Any]] = await self._run(read, [])
        return found

    async def request(self, approval: str, decision: dict[str, Any]) -> bool:
        """Ask the replica holding ``approval`` to decide it so; False if no replica holds it."""

        def ask() -> bool:
            if not self._redis.exists(_HELD + approval):
                return False
            self._redis.set(_DECIDED + approval, msgspec.json.encode(decision), ex=300)
            return True

        asked: bool = await self._run(ask, False)
        return asked

    async def decisions(self, approvals: list[str]) -> dict[str, dict[str, Any]]:
        def read() -> dict[str, dict[str, Any]]:
            values = self._redis.mget([_DECIDED + a for a in approvals])
            return {
                a: msgspec.json.decode(v) for a, v in zip(approvals, values, strict=True) if v is not None
            }

        found: dict[str, dict[str, Any]] = await self._run(read, {})
        return found

    async def _run(self, call: Callable[[], Any], otherwise: Any) -> Any:
        try:
            return await trio.to_thread.run_sync(call)
        except self._errors as exc:
            now = time.monotonic()
            if self._said_at is None or now - self._said_at >= _SAY_AGAIN_AFTER:
                self._said_at = now
                _log.warning(
                    "approvals: Redis at %s does not answer (%s): each replica keeps its own", self.url, exc
                )
            return otherwise

    def close(self) -> None:
        self._redis.close()
