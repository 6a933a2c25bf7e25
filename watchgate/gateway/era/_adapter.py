"""The 2026-07-28 era toward one client, on every transport: the client-side era layer.

A client of the 2026-07-28 revision sends no ``initialize``: each request carries the version,
its identity and its capabilities in ``_meta``. The client actor is the same for both eras and
every transport (stdio, the daemon's socket, HTTP); what that era asks of it is here, called at
four points of the actor's message path:

- a request whose params carry the era's mark (`ModernEra.request`): ``_meta`` checked (the
  error is the answer), the client's connection-owned keys dropped toward the servers, the
  method kept for the shape of the answer; ``subscriptions/listen`` and the retry of a parked
  call are served here;
- a message on its way to the client (`outgoing`, then `shaped`): a legacy server's question
  becomes an ``input_required`` round of the call it belongs to (``_rounds.py``), the answer
  to a subscription's own ``resources/subscribe`` is kept (``_listening.py``), and every result
  gets its ``resultType`` (and cacheable ones ``ttlMs``/``cacheScope``);
- ``notifications/cancelled`` (`cancelled`): one naming a subscription ends it, one naming a
  retry cancels the call it stands for;
- a broadcast (`broadcast`): a client that listens hears it through its subscriptions only.

A call parked on ``input_required`` that nobody resumes within ``rounds.PARK_SECONDS`` is
cancelled upstream, on the actor's clock; a client of one request (HTTP) then ends.
"""

from __future__ import annotations

import logging
import math
import re
import weakref
from typing import Any, Final, Protocol

import trio
from msgspec import UNSET

from watchgate.errors import JsonRpcError
from watchgate.gateway.era._listening import DeskHost, ListenDesk
from watchgate.gateway.era._rounds import ClientRounds
from watchgate.gateway.messages import ClientNotification, ForwardAnswer
from watchgate.gateway.ports import AnswerPort, RouterPort
from watchgate.protocol import eras, jsonrpc
from watchgate.protocol.jsonrpc import Message, RequestId, error_response

__all__ = ["ModernEra"]

_MARK: Final = re.compile(re.escape(eras.VERSION_KEY.encode()))  # scans params without copying
_log = logging.getLogger("watchgate.client")


class EraHost(DeskHost, Protocol):
    """What of its client actor the era layer uses."""

    @property
    def name(self) -> str: ...

    def settle(self) -> None:
        """A request read is answered otherwise (a subscription: answered when it ends)."""

    def asker(self, question_id: str) -> AnswerPort | None:
        """The upstream waiting for the client's answer to ``question_id`` (taken)."""

    def end(self) -> None: ...


class ModernEra:
    def __init__(
        self,
        host: EraHost,
        router: RouterPort,
        *,
        one_request: bool = False,
        listens_only: bool = False,
    ) -> None:
        # The client owns its era: a reference back to it is weak, else every client and its
        # era would be a reference cycle, freed only by the cyclic garbage collector (a
        # 2026-07-28 request's ~30 objects each time: most of the collector's work under load)
        self._client = weakref.ref(host)
        self._router = router
        self._one_request = one_request
        #: 2026-07-28 requests awaiting their answer: method (a plain dict: the actor tests it
        #: on every message it sends), and the capabilities each declared
        self.requests: dict[RequestId, str] = {}
        self._declared: dict[RequestId, dict[str, Any]] = {}
        self._rounds = ClientRounds()
        #: its subscriptions, made when it first listens (most clients never do: a 2026-07-28
        #: request over HTTP is a client of its own, and this costs more than the rest of it)
        self._listening: ListenDesk | None = None
        if listens_only:  # broadcasts reach it through its subscriptions alone, from the start
            self._desk().listened = True
        self._parked: trio.Event | None = None  # a call was parked: the expiry watch looks again
        self._nursery: trio.Nursery | None = None  # the session's: the expiry watch starts there

    @property
    def _host(self) -> EraHost:
        host = self._client()
        assert host is not None, "an era is reached only through its client"
        return host

    def _desk(self) -> ListenDesk:
        """Its subscriptions' desk, made on first use."""
        if self._listening is None:
            self._listening = ListenDesk(self._host, self._router)
        return self._listening

    def start(self, nursery: trio.Nursery) -> None:
        """The session's task has begun: the expiry watch may start in ``nursery`` (at once if a
        call parked while the client was served in its caller's task)."""
        self._nursery = nursery
        if self._rounds.calls:
            self._watch_expiry()

    @staticmethod
    def marks(msg: Message) -> bool:
        """The request's params name the era's version key (its ``_meta`` is checked next)."""
        return msg.params is not UNSET and _MARK.search(msg.params) is not None

    @property
    def busy(self) -> bool:
        """Something the client is sent may be the era's to change."""
        return bool(
            self.requests or self._rounds.calls or (self._listening is not None and self._listening.pending)
        )

    # -- from the client ---------------------------------------------------------------------------

    async def request(self, msg: Message) -> Message | None:
        """A request with the era's mark: the request to route on (stripped of the client's
        connection-owned ``_meta`` keys), or None when it is answered or served here."""
        params = eras.params_of(msg)
        if eras.modern_version(params) is None:
            return msg  # the key was elsewhere in the params: a legacy request
        assert isinstance(msg.id, int | str) and isinstance(msg.method, str)
        try:
            eras.check_meta(params)
        except JsonRpcError as exc:
            await self._host.send(error_response(msg.id, exc))
            return None
        assert params is not None
        capabilities, client_info = eras.client_identity(params)
        # a legacy server may ask it what this request's capabilities say it can answer
        self._host.introduce(capabilities, client_info)
        if msg.method == "subscriptions/listen":  # answered only when it ends: nothing owed till then
            self._host.settle()
            self._host.mark_initialized()
            await self._desk().open(msg)
            return None
        self.requests[msg.id] = msg.method
        self._declared[msg.id] = capabilities
        state = params.get("requestState")
        if eras.is_round_state(state):
            await self._resume(msg, state, params.get("inputResponses"))
            return None
        return eras.for_upstream(msg, params)

    async def cancelled(self, msg: Message) -> Message | None:
        """``notifications/cancelled``: None if it ended a subscription; else as upstream must
        see it (a retry's names the call it stands for)."""
        desk = self._listening
        if desk is not None and desk.listened and await desk.close(msg):
            return None
        return self._rounds.cancelling(msg) if self._rounds.calls else msg

    def declared(self, request_id: RequestId) -> dict[str, Any] | None:
        """The capabilities a 2026-07-28 request declared (its client answers ``input_required``
        itself when its server is of the same era)."""
        return self._declared.get(request_id)

    # -- toward the client -------------------------------------------------------------------------

    def waits_on(self, msg: Message) -> bool:
        """`outgoing(msg)` may wait: for a subscription's own answer, or a server's question (the
        rest it changes or passes at once)."""
        if msg.method is UNSET:
            return self._listening is not None and self._listening.owns(msg)
        return msg.id is not UNSET and msg.id is not None

    async def outgoing(self, msg: Message) -> Message | None:
        """What the client is sent instead of ``msg``: None when nothing is, now."""
        desk = self._listening
        if desk is not None and desk.owns(msg):
            await desk.answered(msg)  # the answer to a subscription's own resources/subscribe
            return None
        if msg.method is UNSET:
            return self._rounds.answered(msg) if self._rounds.calls else msg
        if msg.id is UNSET or msg.id is None:
            return msg  # a notification: as it is
        asked = self._rounds.ask(msg, self.requests, trio.current_time())
        if asked is False:  # no call of this era to carry it: the server hears why
            upstream = self._host.asker(str(msg.id))
            refusal = JsonRpcError(jsonrpc.METHOD_NOT_FOUND, "the client has no call in flight to ask in")
            if upstream is not None:
                await upstream.tell(ForwardAnswer(error_response(msg.id, refusal)))
            return None
        if not isinstance(asked, Message):
            return None
        self._watch_expiry()
        return asked

    def shaped(self, answer: Message) -> Message:
        """An answer to a 2026-07-28 request, as that era shapes results."""
        request_id = answer.id
        if not isinstance(request_id, int | str) or (method := self.requests.pop(request_id, None)) is None:
            return answer
        self._declared.pop(request_id, None)
        return eras.shaped(answer, method)

    def broadcast(self, line: bytes) -> list[bytes] | None:
        """A broadcast as this client hears it: None as it is; else a tagged copy for each of
        its subscriptions that asked for it."""
        desk = self._listening
        return desk.route(line) if desk is not None and desk.listened else None

    def close(self) -> None:
        """The session ends: each open subscription gets its graceful closure."""
        if self._listening is not None:
            self._listening.close_all()

    # -- input_required rounds ---------------------------------------------------------------------

    async def _resume(self, msg: Message, state: str, responses: Any) -> None:
        """A retry of a call answered ``input_required``: its answers go to the server that asked."""
        assert isinstance(msg.id, int | str)
        resumed = self._rounds.resume(msg.id, state, msg.method, responses, trio.current_time())
        if resumed is None:
            why = "the requestState is unknown or its call has ended: send the request again without it"
            await self._host.send(error_response(msg.id, JsonRpcError(jsonrpc.INVALID_PARAMS, why)))
            return
        if resumed.cancel is not None:
            await self._cancel_upstream(resumed.cancel, "its retry asked for something else")
        for key, result in resumed.answers:
            upstream = self._host.asker(key)
            if upstream is not None:
                await upstream.tell(ForwardAnswer(jsonrpc.result_response(key, result)))
        if resumed.reply is not None:
            await self._host.send(resumed.reply)
            if self._rounds.calls:
                self._watch_expiry()

    async def _cancel_upstream(self, call: RequestId, why: str) -> None:
        cancel = jsonrpc.notification("notifications/cancelled", {"requestId": call, "reason": why})
        await self._router.tell(ClientNotification(self._host, cancel))

    def _watch_expiry(self) -> None:
        """A call was parked: (re)consider when the next one expires; the watch starts with the
        first parked call, so a client that never needs it does not pay for it."""
        if self._nursery is not None:
            self._nursery.start_soon(self._expire_rounds)
            self._nursery = None
        if self._parked is not None:  # else the watch has not begun: it looks when it does
            self._parked.set()

    async def _expire_rounds(self) -> None:
        """Cancel upstream the calls parked on ``input_required`` that nobody resumes in time;
        a client of one request (HTTP) then has nothing left and ends."""
        while True:
            self._parked = trio.Event()
            due = self._rounds.next_expiry()
            with trio.move_on_at(math.inf if due is None else due):
                await self._parked.wait()
                continue
            expired = self._rounds.expire(trio.current_time())
            for call in expired:
                _log.info("[%s] nobody resumed call %r in time: it is cancelled", self._host.name, call)
                await self._cancel_upstream(call, "nobody answered what its server asked in time")
            if expired and self._one_request and not self._rounds.calls:
                self._host.end()
