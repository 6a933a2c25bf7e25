"""An upstream's table of requests awaiting an answer.

Every request sent upstream gets a gateway id unique on that connection; the table maps it back
to the client and the client's own id (many clients share one upstream, and two of them may both
use id 1). The gateway id doubles as the progress token sent upstream, so progress notifications
map back without a second table. Insertion order equals deadline order (one timeout per
upstream), so expiry only ever looks at the head.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from watchgate.gateway.ports import CallSlot, ClientPort

if TYPE_CHECKING:
    import msgspec

    from actors import Reply
    from watchgate.hooks import CallContext


@dataclass(slots=True)
class Pending:
    gateway_id: int
    method: str
    deadline: float
    client: ClientPort | None = None
    client_request_id: int | str | None = None
    progress_token: Any = None
    reply: Reply[msgspec.Raw] | None = None
    ctx: CallContext | None = None  # the message hooks' context, when hooks are configured
    slot: CallSlot | None = None  # freed when the request leaves the table, however it ends


class InFlightTable:
    def __init__(self) -> None:
        self._by_id: dict[int, Pending] = {}
        self._by_client: dict[tuple[int, int | str], int] = {}
        self._next_id = 0

    def __len__(self) -> int:
        return len(self._by_id)

    def has_client_requests(self) -> bool:
        """A client's request is in flight (not only the gateway's own calls)."""
        return any(pending.client is not None for pending in self._by_id.values())

    def __iter__(self) -> Iterator[Pending]:
        return iter(list(self._by_id.values()))

    def add(
        self,
        method: str,
        deadline: float,
        *,
        client: ClientPort | None = None,
        client_request_id: int | str | None = None,
        progress_token: Any = None,
        reply: Reply[msgspec.Raw] | None = None,
        ctx: CallContext | None = None,
        slot: CallSlot | None = None,
    ) -> Pending:
        self._next_id += 1
        pending = Pending(
            self._next_id, method, deadline, client, client_request_id, progress_token, reply, ctx, slot
        )
        self._by_id[pending.gateway_id] = pending
        if client is not None and client_request_id is not None:
            self._by_client[(client.client_id, client_request_id)] = pending.gateway_id
        return pending

    def get(self, gateway_id: int) -> Pending | None:
        return self._by_id.get(gateway_id)

    def pop(self, gateway_id: int) -> Pending | None:
        pending = self._by_id.pop(gateway_id, None)
        if pending is None:
            return None
        if pending.client is not None and pending.client_request_id is not None:
            self._by_client.pop((pending.client.client_id, pending.client_request_id), None)
        if pending.slot is not None:
            pending.slot.release()
        return pending

    def find(self, client_id: int, client_request_id: int | str) -> Pending | None:
        gateway_id = self._by_client.get((client_id, client_request_id))
        return None if gateway_id is None else self._by_id.get(gateway_id)

    def of_client(self, client_id: int) -> list[Pending]:
        return [p for p in self._by_id.values() if p.client is not None and p.client.client_id == client_id]

    def clients(self) -> list[ClientPort]:
        """The clients with a request in flight, each once, the latest first."""
        found: dict[int, ClientPort] = {}
        for pending in reversed(self._by_id.values()):
            if pending.client is not None:
                found.setdefault(pending.client.client_id, pending.client)
        return list(found.values())

    def pop_expired(self, now: float) -> list[Pending]:
        expired = []
        for pending in list(self._by_id.values()):
            if pending.deadline > now:
                break
            expired.append(pending)
            self.pop(pending.gateway_id)
        return expired

    def next_deadline(self) -> float | None:
        return next(iter(self._by_id.values())).deadline if self._by_id else None

    def drain(self) -> list[Pending]:
        drained = list(self._by_id.values())
        self._by_id.clear()
        self._by_client.clear()
        for pending in drained:
            if pending.slot is not None:
                pending.slot.release()
        return drained
