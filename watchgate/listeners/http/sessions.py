"""The legacy sessions of one HTTP listener (2025-11-25 and before): opened by ``initialize``,
named by ``Mcp-Session-Id``, ended by DELETE, by ``session_idle_timeout`` without use, or by
the listener's shutdown. Each runs as a client of the gateway (``Gateway.attach_channel``);
when the gateway ends one (``watchgate down``), it leaves this table too.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable

import trio

from watchgate.gateway.tree import Gateway
from watchgate.listeners.http.session import HttpSession

__all__ = ["SessionTable"]

_log = logging.getLogger("watchgate.http")


class SessionTable:
    def __init__(self, gateway: Gateway, *, limit: int, idle_timeout: float) -> None:
        self._gateway = gateway
        self._sessions: dict[str, HttpSession] = {}
        self._limit = limit
        self._idle_timeout = idle_timeout
        self._nursery: trio.Nursery | None = None

    def __len__(self) -> int:
        return len(self._sessions)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the sessions' tasks and end the idle ones; on cancel every session ends."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                while True:
                    await trio.sleep(min(60.0, self._idle_timeout))
                    self._end_idle()
        finally:
            self._nursery = None

    def _end_idle(self) -> None:
        cutoff = trio.current_time() - self._idle_timeout
        for session in list(self._sessions.values()):
            if session.last_used < cutoff and not session.busy:
                _log.info("ending session %s: unused for %g s", session.id, self._idle_timeout)
                session.end()

    def full(self) -> bool:
        return len(self._sessions) >= self._limit

    async def open(self, peer: str, profile: str | None = None) -> HttpSession:
        """A new session, served by a client actor (seeing what ``profile`` shows) until it ends."""
        assert self._nursery is not None, "the table is not running"
        session = HttpSession(secrets.token_urlsafe(24))
        assert session.id is not None
        self._sessions[session.id] = session
        started = trio.Event()
        self._nursery.start_soon(self._serve, session, peer, profile, started)
        await started.wait()
        return session

    async def _serve(self, session: HttpSession, peer: str, profile: str | None, started: trio.Event) -> None:
        assert session.id is not None
        try:
            started.set()
            await self._gateway.attach_channel(session, peer=peer, profile=profile)
        finally:
            session.end()
            self._sessions.pop(session.id, None)

    def spawn(self, task: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run ``task`` for as long as the listener runs (a parked 2026-07-28 call's actor)."""
        assert self._nursery is not None, "the table is not running"
        self._nursery.start_soon(task, *args)

    def get(self, session_id: str) -> HttpSession | None:
        return self._sessions.get(session_id)

    def end_all(self) -> None:
        for session in list(self._sessions.values()):
            session.end()
