"""The legacy sessions of one HTTP listener (2025-11-25 and before): opened by ``initialize``,
named by ``Mcp-Session-Id``, ended by DELETE, by ``session_idle_timeout`` without use, or by
the listener's shutdown. Each runs as a client of the gateway (``Gateway.attach_channel``);
when the gateway ends one (``watchgate down``), it leaves this table too.

A client that opens sessions and never ends them must not lock the others out: when the table
(or one address's share of it) is full, an idle session makes room, first one that never made
a request after its ``initialize``, then the one unused longest. Only when every session is
busy is a new one refused (503).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable

import trio

from watchgate.gateway.tree import Gateway
from watchgate.listeners.http.overdue import Overdue
from watchgate.listeners.http.session import HttpSession
from watchgate.protocol.identity import ANONYMOUS, Principal

__all__ = ["SessionTable"]

_log = logging.getLogger("watchgate.http")


class SessionTable:
    def __init__(
        self, gateway: Gateway, *, limit: int, idle_timeout: float, per_peer: int | None = None
    ) -> None:
        self._gateway = gateway
        self._sessions: dict[str, HttpSession] = {}
        self._peers: dict[str, str] = {}  # session id -> the address (host) that opened it
        self._limit = limit
        self._per_peer = per_peer if per_peer is not None else max(1, limit // 4)
        self._idle_timeout = idle_timeout
        self._nursery: trio.Nursery | None = None
        self.overdue = Overdue()  # the listener's requests waiting for answers (its task runs here)

    def __len__(self) -> int:
        return len(self._sessions)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the sessions' tasks (and the watch of requests waiting for answers) and end the
        idle sessions; on cancel every session ends."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self.overdue.run)
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

    def make_room(self, peer: str) -> str | None:
        """Room for one more session from ``peer``: ends an idle session if the table or the
        address's share is full; why not (None: there is room)."""
        host = _host(peer)
        mine = [s for sid, s in self._sessions.items() if self._peers.get(sid) == host]
        if len(mine) >= self._per_peer and not self._evict(mine):
            return f"too many sessions from {host} ({self._per_peer}, all busy); end one with DELETE"
        if len(self._sessions) >= self._limit and not self._evict(list(self._sessions.values())):
            return "too many sessions, all busy; end one with DELETE, or try again later"
        return None

    def _evict(self, candidates: list[HttpSession]) -> bool:
        idle = [s for s in candidates if not s.busy]
        if not idle:
            return False
        victim = min(idle, key=lambda s: (s.requests > 1, s.last_used))  # never used first, then oldest
        _log.info(
            "ending session %s to make room: %s", victim.id, "never used" if victim.requests <= 1 else "idle"
        )
        self._forget(victim)
        return True

    def _forget(self, session: HttpSession) -> None:
        session.end()
        assert session.id is not None
        self._sessions.pop(session.id, None)
        self._peers.pop(session.id, None)

    async def open(
        self, peer: str, profile: str | None = None, principal: Principal = ANONYMOUS
    ) -> HttpSession:
        """A new session of ``principal``, served by a client actor (seeing what ``profile``
        shows) until it ends."""
        assert self._nursery is not None, "the table is not running"
        session = HttpSession(secrets.token_urlsafe(24))
        session.principal = principal
        assert session.id is not None
        self._sessions[session.id] = session
        self._peers[session.id] = _host(peer)
        started = trio.Event()
        self._nursery.start_soon(self._serve, session, peer, profile, started)
        await started.wait()
        return session

    async def _serve(self, session: HttpSession, peer: str, profile: str | None, started: trio.Event) -> None:
        assert session.id is not None
        try:
            started.set()
            await self._gateway.attach_channel(
                session, peer=peer, profile=profile, principal=session.principal
            )
        finally:
            self._forget(session)

    def spawn(self, task: Callable[..., Awaitable[object]], *args: object) -> bool:
        """Run ``task`` for as long as the listener runs (a parked 2026-07-28 call's actor);
        False when the listener is stopping (nothing is started)."""
        if self._nursery is None:
            return False
        try:
            self._nursery.start_soon(task, *args)
        except RuntimeError:  # the nursery is closing: the table stops
            return False
        return True

    def get(self, session_id: str) -> HttpSession | None:
        return self._sessions.get(session_id)

    def end_all(self) -> None:
        for session in list(self._sessions.values()):
            session.end()


def _host(peer: str) -> str:
    """The address part of a peer (``http 127.0.0.1:51822`` -> ``127.0.0.1``)."""
    address = peer.removeprefix("http ").split(" ", 1)[0]
    return address.rpartition(":")[0] or address
