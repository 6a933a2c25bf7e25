"""A person in the loop: tool calls held until someone approves them (``approvals:``).

A ``tools/call`` that an approval rule matches is held after the plugins' request checks (a call
the policy blocks is never shown) and before its server sees anything; the server only ever
gets calls that were approved. Who is asked (``ask``):

- ``client``: the calling client, when it declared elicitation: a form-mode
  ``elicitation/create`` naming the server, the tool and the arguments (as the audit log records
  them: after the plugins' redaction), whose schema is one boolean, ``approve``. A 2026-07-28
  client gets it as its call's ``input_required`` round (``gateway/era/``), like any question;
- ``console``: nobody in the call: it is parked and listed (``watchgate approvals``, the
  daemon's control socket) until a person approves or denies it by its id;
- ``auto`` (the default): the client if it can be asked, else the console.

A held call is listed whichever way it was asked, and the first decision wins. Nobody deciding
within the rule's ``timeout`` denies it; its client leaving withdraws it. An approval may be
remembered (``remember``): for the client's session, or for the caller's identity for a while,
so the same tool runs without asking again; denials are never remembered. Each step is an
``approval`` record in the audit log: asked, then approved, denied, timed out or withdrawn,
by whom, through which channel, after how long.
"""

from __future__ import annotations

import fnmatch
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec
import trio

from watchgate.audit.record import AuditEntry
from watchgate.config.schema import remember_seconds
from watchgate.errors import JsonRpcError
from watchgate.gateway.messages import ForwardAnswer
from watchgate.gateway.ports import ClientPort
from watchgate.gateway.shared_approvals import POLL_EVERY, SharedApprovals
from watchgate.protocol import jsonrpc
from watchgate.protocol.jsonrpc import Message

if TYPE_CHECKING:
    from watchgate.config.schema import ApprovalRule

__all__ = ["APPROVAL_DENIED", "ApprovalDenied", "Approvals", "HeldCall", "Outcome"]

APPROVAL_DENIED: Final = -32010  # a policy refusal, as the plugins' (PolicyDenied)
_SHOWN_ARGUMENTS: Final = 2000  # characters of the arguments a question shows
_log = logging.getLogger("watchgate.approvals")

Channel = Literal["client", "console"]


class ApprovalDenied(JsonRpcError):
    """A held call that was not approved: denied, declined, timed out (-32010)."""

    def __init__(self, reason: str, approval: str) -> None:
        super().__init__(APPROVAL_DENIED, reason, {"approval": approval, "reason": reason})


@dataclass(frozen=True)
class Outcome:
    """How a held call ended: ``approved`` runs it; anything else answers it with why."""

    kind: Literal["approved", "denied", "timed out", "withdrawn"]
    by: str  # a person's name, "the client", "nobody", ...
    channel: str  # client | console | cli | timeout | session end | remembered
    reason: str | None = None


@dataclass
class HeldCall:
    """A call waiting for a person, as ``watchgate approvals`` lists it."""

    id: str
    server: str
    tool: str  # the name the client called it by
    client: ClientPort
    arguments: Any
    asked_at: float  # wall clock
    deadline: float  # trio time
    rule: ApprovalRule
    channel: Channel
    decided: trio.Event = field(default_factory=trio.Event)
    outcome: Outcome | None = None
    answered: trio.Event = field(default_factory=trio.Event)  # run or refused: the call is past us

    def describe(self, now: float, wall: float) -> dict[str, Any]:
        principal = self.client.principal
        return {
            "id": self.id,
            "server": self.server,
            "tool": self.tool,
            "client": f"client-{self.client.client_id}",
            "principal": principal.name,
            "groups": list(principal.groups),
            "arguments": self.arguments,
            "asked": self.channel,
            "age": round(wall - self.asked_at, 1),
            "expires_in": round(max(0.0, self.deadline - now), 1),
        }


class _AnswerPort:
    """Where the client's answer to an approval question goes (as a server's would)."""

    def __init__(self, on_answer: Callable[[Message], None]) -> None:
        self._on_answer = on_answer

    async def tell(self, msg: ForwardAnswer) -> None:
        self._on_answer(msg.msg)


def approval_entry(held: HeldCall, outcome: Outcome | None, waited: float) -> AuditEntry:
    """The audit record of one step of an approval: asked, then how it ended, by whom, through
    which channel, after how long (``duration_ms``)."""
    principal = held.client.principal
    decision: Literal["allow", "deny"] | None = None
    if outcome is None:
        reason = f"approval {held.id} asked through the {held.channel}"
    else:
        reason = f"approval {held.id} {outcome.kind} by {outcome.by} ({outcome.channel})"
        reason += f": {outcome.reason}" if outcome.reason else ""
        decision = "allow" if outcome.kind == "approved" else "deny"
    return AuditEntry(
        event="approval",
        client=f"client-{held.client.client_id}",
        principal=principal.name,
        groups=principal.groups or None,
        server=held.server,
        method="tools/call",
        tool=held.tool,
        public_name=held.tool,
        decision=decision,
        plugin="approvals",
        reason=reason,
        duration_ms=None if outcome is None else round(waited * 1000, 1),
    )


Record = Callable[[AuditEntry], None]


class Approvals:
    def __init__(
        self,
        rules: Sequence[ApprovalRule] = (),
        *,
        record: Record | None = None,
        wall_clock: Callable[[], float] = time.time,
        shared: SharedApprovals | None = None,
    ) -> None:
        self.rules = tuple(rules)
        self.shared = shared  # every replica's held calls, in Redis (proxy.state)
        self._record = record if record is not None else (lambda entry: None)
        self._wall = wall_clock
        self._held: dict[str, HeldCall] = {}
        self._by_session: set[tuple[int, str, str]] = set()  # (client, server, tool) approved
        self._by_identity: dict[tuple[str, str, str], float] = {}  # (principal, server, tool) -> until
        self._ids = itertools.count(1)
        self._nursery: trio.Nursery | None = None
        self._started = trio.Event()
        self.changed = trio.Event()  # something was held or decided: a watcher looks again

    def configure(self, rules: Sequence[ApprovalRule]) -> None:
        self.rules = tuple(rules)

    def start(self, nursery: trio.Nursery) -> None:
        """Where held calls wait (the router's nursery)."""
        self._nursery = nursery
        self._started.set()
        if self.shared is not None:
            nursery.start_soon(self._decided_elsewhere, self.shared)

    @property
    def enabled(self) -> bool:
        return bool(self.rules)

    # -- which calls wait ------------------------------------------------------------------------

    def rule_for(self, server: str, tool: str, client: ClientPort) -> ApprovalRule | None:
        """The first rule that holds this call, unless an approval it remembers covers it."""
        principal = client.principal
        for rule in self.rules:
            if rule.servers is not None and server not in rule.servers:
                continue
            if not any(fnmatch.fnmatchcase(tool, glob) for glob in rule.tools):
                continue
            match = rule.match
            if not principal.is_one_of(match.user, match.users, match.groups, match.claims):
                continue
            if (client.client_id, server, tool) in self._by_session:
                return None
            until = self._by_identity.get((principal.name, server, tool))
            if until is not None and until > self._wall():
                return None
            return rule
        return None

    # -- holding a call ---------------------------------------------------------------------------

    async def hold(
        self,
        rule: ApprovalRule,
        server: str,
        tool: str,
        client: ClientPort,
        msg: Message,
        run: Callable[[], Awaitable[None]],
        refuse: Callable[[JsonRpcError], Awaitable[None]],
    ) -> HeldCall:
        """Hold the call (in a task of its own: the caller goes on reading its client); ``run``
        forwards it once approved, ``refuse`` answers it otherwise."""
        arguments = jsonrpc.load(jsonrpc.params_fields(msg).get("arguments", msgspec.UNSET))
        can_ask = rule.ask != "console" and _asks_elicitation(client)
        held = HeldCall(
            id=f"a{next(self._ids)}-{secrets.token_hex(3)}",
            server=server,
            tool=tool,
            client=client,
            arguments=None if arguments is msgspec.UNSET else arguments,
            asked_at=self._wall(),
            deadline=trio.current_time() + rule.timeout,
            rule=rule,
            channel="client" if can_ask else "console",
        )
        self._held[held.id] = held
        self._record(approval_entry(held, None, 0.0))
        self._changed()
        if self._nursery is None:  # a call that came before the router ran: it starts at once
            await self._started.wait()
        assert self._nursery is not None
        self._nursery.start_soon(self._wait, held, run, refuse)
        if self.shared is not None:
            self._nursery.start_soon(self.shared.publish, self._listed(held), held.rule.timeout)
        return held

    async def _wait(
        self,
        held: HeldCall,
        run: Callable[[], Awaitable[None]],
        refuse: Callable[[JsonRpcError], Awaitable[None]],
    ) -> None:
        try:
            outcome = await self._outcome(held)
            self._held.pop(held.id, None)
            if outcome.kind == "approved":
                self._remember(held)
                await run()
            else:
                await refuse(ApprovalDenied(_refusal(held, outcome, self._wall()), held.id))
        finally:
            held.answered.set()

    async def _outcome(self, held: HeldCall) -> Outcome:
        """Ask (the client, if it is its turn), then wait for a decision or the deadline."""
        if held.rule.ask == "client" and held.channel != "client":
            why = "the client cannot be asked (it declared no elicitation)"
            self._decide(held, Outcome("denied", "nobody", "client", why))
        elif held.channel == "client":
            await self._ask_client(held)
        with trio.move_on_at(held.deadline):
            await held.decided.wait()
        if held.outcome is None:
            self._decide(held, Outcome("timed out", "nobody", "timeout"))
        assert held.outcome is not None
        return held.outcome

    async def _ask_client(self, held: HeldCall) -> None:
        question_id = f"watchgate-approval-{held.id}"
        held.client.expect_answer(question_id, _AnswerPort(lambda answer: self._answered(held, answer)))
        await held.client.send(jsonrpc.request(question_id, "elicitation/create", _question(held)))

    def _answered(self, held: HeldCall, answer: Message) -> None:
        """The client's answer: accept with ``approve: true`` runs the call; anything else does not."""
        if answer.is_error:
            if held.rule.ask == "auto":  # it could not ask after all: the console decides
                held.channel = "console"
                self._changed()
                return
            why = "the client could not ask (it answered the question with an error)"
            self._decide(held, Outcome("denied", "the client", "client", why))
            return
        result = jsonrpc.load(answer.result)
        result = result if isinstance(result, dict) else {}
        content = result.get("content")
        who = held.client.principal.name
        if result.get("action") == "accept" and isinstance(content, dict) and content.get("approve") is True:
            self._decide(held, Outcome("approved", who, "client"))
        else:
            self._decide(held, Outcome("denied", who, "client", "declined in the client"))

    # -- deciding --------------------------------------------------------------------------------

    def held(self) -> list[HeldCall]:
        """The calls still waiting for a decision (a decided one is gone from the list at once,
        with the change event, even before its task has run or refused it)."""
        return sorted((h for h in self._held.values() if h.outcome is None), key=lambda h: h.asked_at)

    def listing(self) -> list[dict[str, Any]]:
        now, wall = trio.current_time(), self._wall()
        return [held.describe(now, wall) for held in self.held()]

    def decide(
        self, approval: str, *, approve: bool, by: str, channel: str = "cli", reason: str | None = None
    ) -> str | None:
        """A person's decision on a held call; None if done, else why not (no such call)."""
        held = self._held.get(approval)
        if held is None or held.outcome is not None:
            return f"no call waits for approval {approval!r} (decided, expired, or never held)"
        self._decide(held, Outcome("approved" if approve else "denied", by, channel, reason))
        return None

    async def listing_all(self) -> list[dict[str, Any]]:
        """This replica's held calls, and those of every other replica sharing its state."""
        mine = self.listing()
        if self.shared is None:
            return mine
        ours = {row["id"] for row in mine}
        now = self._wall()
        others = []
        for row in await self.shared.listing():
            if row["id"] in ours or row.get("replica") == self.shared.replica:
                continue
            row["age"] = round(now - row.pop("asked_at_wall", now), 1)
            others.append(row)
        return mine + others

    async def decide_anywhere(
        self, approval: str, *, approve: bool, by: str, channel: str = "cli", reason: str | None = None
    ) -> str | None:
        """`decide`, for a call this replica holds or (with shared state) another one does."""
        refused = self.decide(approval, approve=approve, by=by, channel=channel, reason=reason)
        if refused is None or self.shared is None or approval in self._held:
            return refused
        decision = {"approve": approve, "by": by, "channel": channel, "reason": reason}
        return None if await self.shared.request(approval, decision) else refused

    async def _decided_elsewhere(self, shared: SharedApprovals) -> None:
        """Decide the calls held here that a person decided on another replica."""
        while True:
            waiting = [h.id for h in self._held.values() if h.outcome is None]
            if not waiting:
                await self.changed.wait()
                continue
            for approval, decision in (await shared.decisions(waiting)).items():
                held = self._held.get(approval)
                if held is not None:
                    who, channel = str(decision.get("by", "?")), str(decision.get("channel", "replica"))
                    outcome = Outcome(
                        "approved" if decision.get("approve") is True else "denied",
                        who,
                        f"{channel} on another replica",
                        decision.get("reason"),
                    )
                    self._decide(held, outcome)
            await trio.sleep(POLL_EVERY)

    def _listed(self, held: HeldCall) -> dict[str, Any]:
        row = held.describe(trio.current_time(), self._wall())
        row["asked_at_wall"] = held.asked_at
        return row

    def client_gone(self, client_id: int) -> None:
        """The client left: its held calls are withdrawn, its session's approvals forgotten."""
        for held in list(self._held.values()):
            if held.client.client_id == client_id and held.outcome is None:
                self._decide(held, Outcome("withdrawn", "nobody", "session end", "the client left"))
        self._by_session = {key for key in self._by_session if key[0] != client_id}

    async def withdraw_all(self, reason: str, *, within: float = 1.0) -> None:
        """The gateway stops: every held call is withdrawn and answered saying why (within
        ``within`` seconds), before the sessions end."""
        held = [h for h in self._held.values() if h.outcome is None]
        for each in held:
            self._decide(each, Outcome("withdrawn", "nobody", "shutdown", reason))
        with trio.move_on_after(within):
            for each in held:
                await each.answered.wait()

    def forget(self) -> int:
        """Forget every remembered approval; how many there were."""
        count = len(self._by_session) + len(self._by_identity)
        self._by_session.clear()
        self._by_identity.clear()
        return count

    def _decide(self, held: HeldCall, outcome: Outcome) -> None:
        if held.outcome is not None:
            return
        held.outcome = outcome
        held.decided.set()
        self._record(approval_entry(held, outcome, self._wall() - held.asked_at))
        if self.shared is not None and self._nursery is not None:
            self._nursery.start_soon(self.shared.withdraw, held.id)
        _log.info(
            "[%s] %s of %s: %s by %s (%s)",
            held.server,
            held.id,
            held.tool,
            outcome.kind,
            outcome.by,
            outcome.channel,
        )
        self._changed()

    def _remember(self, held: HeldCall) -> None:
        remember = held.rule.remember
        key = (held.server, held.tool)
        if remember == "session":
            self._by_session.add((held.client.client_id, *key))
        elif remember.startswith("identity-for"):
            seconds = remember_seconds(remember)
            self._by_identity[(held.client.principal.name, *key)] = self._wall() + seconds

    def _changed(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


def _asks_elicitation(client: ClientPort) -> bool:
    return isinstance(client.capabilities.get("elicitation"), dict)


def _question(held: HeldCall) -> dict[str, Any]:
    shown = msgspec.json.encode(held.arguments).decode() if held.arguments is not None else "{}"
    if len(shown) > _SHOWN_ARGUMENTS:
        shown = shown[:_SHOWN_ARGUMENTS] + "…"
    message = (
        f"Watchgate holds a call for your approval.\nServer: {held.server}\nTool: {held.tool}\n"
        f"Arguments: {shown}\nApprove it? (expires in {held.rule.timeout:g} s)"
    )
    schema = {
        "type": "object",
        "properties": {
            "approve": {"type": "boolean", "title": "Approve this call", "default": False},
        },
        "required": ["approve"],
    }
    return {"mode": "form", "message": message, "requestedSchema": schema}


def _refusal(held: HeldCall, outcome: Outcome, now: float) -> str:
    when = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if outcome.kind == "timed out":
        return f"{held.tool} was not approved within {held.rule.timeout:g} s (approval {held.id})"
    if outcome.kind == "withdrawn":
        return f"{held.tool}: approval {held.id} was withdrawn ({outcome.reason})"
    if outcome.channel == "client":
        return f"{held.tool} was {outcome.reason or 'declined in the client'} (approval {held.id})"
    because = f": {outcome.reason}" if outcome.reason else ""
    return f"{held.tool} was denied by {outcome.by} at {when} (approval {held.id}){because}"
