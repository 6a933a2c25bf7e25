"""What the attached clients asked to hear: resource subscriptions and log levels.

Pure bookkeeping for the router (no I/O): it says when an upstream must be told. Several clients
share one upstream, so a subscription reaches the upstream once, from the first subscriber, and
is withdrawn once, with the last; the upstream logs at the most verbose level any client asked.
"""

from __future__ import annotations

from typing import Final

LOG_LEVELS: Final = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")


class Subscriptions:
    def __init__(self) -> None:
        self._holders: dict[str, set[int]] = {}

    def holders(self, uri: str) -> frozenset[int]:
        return frozenset(self._holders.get(uri, ()))

    def add(self, uri: str, client_id: int) -> bool:
        """Count the client in; True when it is the first, so the upstream must be asked."""
        holders = self._holders.setdefault(uri, set())
        first = not holders
        holders.add(client_id)
        return first

    def remove(self, uri: str, client_id: int) -> bool | None:
        """Count the client out; None if it was not subscribed, True when it was the last."""
        holders = self._holders.get(uri)
        if holders is None or client_id not in holders:
            return None
        holders.discard(client_id)
        if holders:
            return False
        del self._holders[uri]
        return True

    def forget(self, client_id: int) -> list[tuple[str, bool]]:
        """A client left: each URI it held, and whether it was the last holder."""
        return [
            (uri, bool(last))
            for uri in list(self._holders)
            if (last := self.remove(uri, client_id)) is not None
        ]


class LogLevels:
    def __init__(self) -> None:
        self._asked: dict[int, str] = {}
        self.current: str | None = None  # what the upstreams were told

    def ask(self, client_id: int, level: str) -> str | None:
        """Record a client's level; the new upstream level if it changed, else None."""
        self._asked[client_id] = level
        return self._recompute()

    def forget(self, client_id: int) -> str | None:
        if self._asked.pop(client_id, None) is None:
            return None
        return self._recompute()

    def _recompute(self) -> str | None:
        if not self._asked:
            return None  # nobody asks any more: leave the upstreams as they are
        level = min(self._asked.values(), key=LOG_LEVELS.index)
        if level == self.current:
            return None
        self.current = level
        return level
