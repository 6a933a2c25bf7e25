"""The message-path seam: where plugins (and the audit log) see and may change what flows.

Four points on the path, each awaited in the actor that already handles the message:

- ``on_request(ctx, msg)`` in the router, after the name is resolved to an upstream and before
  the request is forwarded. It returns the message to forward (maybe changed) or raises a
  ``JsonRpcError`` (usually :class:`~watchgate.errors.PolicyDenied`, -32010), which answers the
  client instead.
- ``on_response(ctx, msg)`` for the answer the client will receive, after the id and URI rewrite.
  It is called exactly once for every context that went through ``on_request``, whatever ended
  the call: the upstream's answer, an error the gateway made (a denial by ``on_request``,
  -32001 timeout, -32003 unavailable or crashed), or the client cancelling or leaving (then the
  message is a -32800 error that nobody is sent). It returns the message to send.
- ``on_notification(upstream, server, msg)`` for each notification an upstream sends that
  reaches clients (broadcasts in the notification actor, progress in the upstream reader), after
  the rewrite for clients; ``None`` drops it. ``*/list_changed`` is not one of them: it becomes a
  re-list, which passes ``on_list``.
- ``on_list(upstream, server, kind, items)`` for each upstream's complete list (``tools``,
  ``prompts``, ``resources``, ``resourceTemplates``) before it enters the router's cache, with
  the upstream's own names; the result is what clients can ever see.

``server`` is the upstream's name in multi-server mode and ``None`` in single-server mode (what
plugins see); ``upstream`` is always the name (for logs and the audit). When no hook is
configured the chain is ``empty`` and the hot path checks that once and does nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from msgspec import Raw

from watchgate.errors import JsonRpcError, PolicyDenied
from watchgate.protocol.identity import Principal
from watchgate.protocol.jsonrpc import Message, error_response

__all__ = [
    "REQUEST_CANCELLED",
    "Action",
    "CallContext",
    "Decision",
    "HookChain",
    "MessageHooks",
    "PolicyDenied",
    "Stage",
    "cancelled_response",
]

REQUEST_CANCELLED: Final = -32800  # only ever seen by hooks: a cancelled request gets no answer
Stage = Literal["request", "response", "notification", "list"]
Action = Literal["allow", "deny", "modify", "error"]
_log = logging.getLogger("watchgate.hooks")


@dataclass(frozen=True, slots=True)
class Decision:
    """What one plugin decided about one message.

    ``action`` is ``error`` when the plugin raised or timed out (it then counts as a denial
    unless the plugin fails open). ``enforced`` is false when the decision was only recorded:
    the plugin runs in ``audit_only`` mode, or an allow carries a note (a flag).
    """

    plugin: str
    stage: Stage
    action: Action
    reason: str | None = None
    enforced: bool = True


@dataclass(slots=True)
class CallContext:
    """One client request that goes to an upstream, from routing to its answer."""

    server: str | None  # None in single-server mode: what plugins see
    upstream: str  # the upstream's name (logs, audit); "" for a call refused before routing
    client_id: int
    method: str
    name: str | None  # the upstream's own tool/prompt name, or resource URI
    public_name: str | None  # what the client used (namespaced in multi-server mode)
    request_id: int | str  # the client's id
    started: float  # trio.current_time() when routed
    request_bytes: int  # size of the request's params as routed (names already the upstream's)
    decisions: list[Decision] = field(default_factory=list)  # every plugin decision, in order
    principal: Principal | None = None  # who the calling client is (None: not known here)
    audited: object = None  # the audit log's entry for the request (its response is paired with it)

    def denial(self) -> Decision | None:
        """The decision that blocked the call, if one did (a plugin that failed closed, "error",
        blocks as surely as one that said "deny")."""
        return next((d for d in self.decisions if d.action in ("deny", "error") and d.enforced), None)


class MessageHooks(Protocol):
    async def on_request(self, ctx: CallContext, msg: Message) -> Message: ...

    async def on_response(self, ctx: CallContext, msg: Message) -> Message: ...

    async def on_notification(self, upstream: str, server: str | None, msg: Message) -> Message | None: ...

    async def on_list(
        self, upstream: str, server: str | None, kind: str, items: list[dict[str, Raw]]
    ) -> list[dict[str, Raw]]: ...


def cancelled_response(ctx: CallContext, reason: str) -> Message:
    """What ``on_response`` is given for a request that ended without an answer to send."""
    return error_response(ctx.request_id, JsonRpcError(REQUEST_CANCELLED, f"request cancelled: {reason}"))


class HookChain:
    """Several hooks composed in order (plugins first, then the audit log).

    A hook that raises anything but a ``JsonRpcError`` is a bug; the chain fails closed: the
    request is denied, the response replaced by an error, the notification dropped, the list
    emptied, and the traceback logged.
    """

    def __init__(self, hooks: Iterable[MessageHooks] = ()) -> None:
        self.hooks: tuple[MessageHooks, ...] = ()
        self.empty = True
        self.set(hooks)

    def set(self, hooks: Iterable[MessageHooks]) -> None:
        """Replace the hooks (a config reload); calls already in progress finish with the old ones."""
        self.hooks = tuple(hooks)
        self.empty = not self.hooks

    async def on_request(self, ctx: CallContext, msg: Message) -> Message:
        for hook in self.hooks:
            try:
                msg = await hook.on_request(ctx, msg)
            except JsonRpcError:
                raise
            except Exception:
                _log.exception("[%s] message hook %s failed on %s", ctx.upstream, _name(hook), ctx.method)
                raise PolicyDenied(_name(hook), "internal error in the gateway's message hook") from None
        return msg

    async def on_response(self, ctx: CallContext, msg: Message) -> Message:
        for hook in self.hooks:
            try:
                msg = await hook.on_response(ctx, msg)
            except JsonRpcError as exc:
                msg = error_response(ctx.request_id, exc)
            except Exception:
                _log.exception("[%s] message hook %s failed on a response", ctx.upstream, _name(hook))
                error = PolicyDenied(_name(hook), "internal error in the gateway's message hook")
                msg = error_response(ctx.request_id, error)
        return msg

    async def on_notification(self, upstream: str, server: str | None, msg: Message) -> Message | None:
        current: Message | None = msg
        for hook in self.hooks:
            if current is None:
                return None
            try:
                current = await hook.on_notification(upstream, server, current)
            except Exception:
                _log.exception(
                    "[%s] message hook %s failed on %s; dropped", upstream, _name(hook), msg.method
                )
                return None
        return current

    async def on_list(
        self, upstream: str, server: str | None, kind: str, items: list[dict[str, Raw]]
    ) -> list[dict[str, Raw]]:
        for hook in self.hooks:
            try:
                items = await hook.on_list(upstream, server, kind, items)
            except Exception:
                _log.exception(
                    "[%s] message hook %s failed on the %s list; hiding it", upstream, _name(hook), kind
                )
                return []
        return items

    async def on_refused(self, ctx: CallContext, msg: Message, error: JsonRpcError) -> None:
        """A call the gateway refused before any plugin saw it (an unknown name, one the tool
        manager or a profile hides), for the hooks that record (the audit log): the plugins
        judge only what reaches a server, and a made-up name is no metric label."""
        for hook in self.hooks:
            record = getattr(hook, "on_refused", None)
            if record is None:
                continue
            try:
                await record(ctx, msg, error)
            except Exception:
                _log.exception("[%s] message hook %s failed on a refused call", ctx.upstream, _name(hook))

    async def on_instructions(self, upstream: str, server: str | None, text: str) -> str | None:
        """A server's ``instructions`` as clients may see them (None: held back), for the hooks
        that judge them (the plugins); a hook that fails holds them back."""
        current: str | None = text
        for hook in self.hooks:
            judge = getattr(hook, "on_instructions", None)
            if judge is None or current is None:
                continue
            try:
                current = await judge(upstream, server, current)
            except Exception:
                _log.exception("[%s] message hook %s failed on its instructions", upstream, _name(hook))
                return None
        return current


def _name(hook: object) -> str:
    return getattr(hook, "hook_name", type(hook).__name__)
