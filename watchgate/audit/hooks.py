"""The audit log on the message path: the last hook in the chain, so it records what the security
plugins let through and what they redacted, never the raw secret.

Every request that is routed gets a ``request`` record, each plugin decision a ``decision``
record, and the answer a ``response`` record that is written (and fsynced if configured) *before*
the answer is released to the client: a client never holds a response the log does not. When the
log cannot be written and ``on_failure: block``, the request is refused with -32011 instead.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec
import trio
from msgspec import UNSET, Raw

from watchgate.audit.actor import AuditActor
from watchgate.audit.record import AuditEntry, Decision, Event
from watchgate.errors import JsonRpcError
from watchgate.hooks import REQUEST_CANCELLED, CallContext
from watchgate.protocol import jsonrpc
from watchgate.protocol.identity import Principal
from watchgate.protocol.jsonrpc import Message, error_response
from watchgate.sanitize import clean, clean_name, clean_optional


class AuditHooks:
    hook_name = "audit"

    def __init__(self, audit: AuditActor, *, include_payloads: bool) -> None:
        self._audit = audit
        self._payloads = include_payloads

    async def on_request(self, ctx: CallContext, msg: Message) -> Message:
        entry = _entry(ctx, "request", request_bytes=ctx.request_bytes, payload=self._payload(msg.params))
        ctx.audited = entry  # the response's record is sealed with it if it is not written yet
        await self._audit.tell(entry)
        return msg

    async def on_response(self, ctx: CallContext, msg: Message) -> Message:
        for decision in ctx.decisions:
            await self._audit.tell(
                _entry(
                    ctx, "decision", decision=decision.action, plugin=decision.plugin, reason=decision.reason
                )
            )
        error_code = jsonrpc.error_code(msg)
        body = msg.error if msg.is_error else msg.result
        denied = ctx.denial()
        await self._audit.write_and_confirm(
            _entry(
                ctx,
                "response",
                decision="deny" if denied else ("error" if error_code is not None else "allow"),
                plugin=denied.plugin if denied else None,
                reason="cancelled" if error_code == REQUEST_CANCELLED else None,
                duration_ms=round((trio.current_time() - ctx.started) * 1000, 3),
                request_bytes=ctx.request_bytes,
                response_bytes=len(body) if isinstance(body, Raw) else 0,
                error_code=error_code,
                payload=self._payload(body),
            ),
            opened_by=ctx.audited if isinstance(ctx.audited, AuditEntry) else None,
        )
        return msg

    async def on_refused(self, ctx: CallContext, msg: Message, error: JsonRpcError) -> None:
        """A call refused before it was routed: its request, the refusal and the answer."""
        await self.on_request(ctx, msg)
        await self.on_response(ctx, error_response(ctx.request_id, error))

    async def on_notification(self, upstream: str, server: str | None, msg: Message) -> Message | None:
        await self._audit.tell(
            AuditEntry(
                event="notification",
                server=upstream,
                method=msg.method if isinstance(msg.method, str) else None,
                payload=self._payload(msg.params),
            )
        )
        return msg

    async def on_list(
        self, upstream: str, server: str | None, kind: str, items: list[dict[str, Raw]]
    ) -> list[dict[str, Raw]]:
        return items

    def _payload(self, raw: Raw | Any) -> Any:
        if not self._payloads or raw is UNSET or not isinstance(raw, Raw):
            return None
        return msgspec.json.decode(raw)


def _entry(
    ctx: CallContext,
    event: Event,
    *,
    decision: Decision | None = None,
    plugin: str | None = None,
    reason: str | None = None,
    duration_ms: float | None = None,
    request_bytes: int | None = None,
    response_bytes: int | None = None,
    error_code: int | None = None,
    payload: Any = None,
) -> AuditEntry:
    """The fields every record about one call shares, plus the event's own (every one of them
    given, so any record of the call can be the copy's source: the request's, once it is
    made, else `_shared`). What the client chose (names, method, id, reasons quoting them)
    is stored only cleaned (``sanitize``)."""
    request_id = ctx.request_id
    opened = ctx.audited
    if isinstance(opened, AuditEntry):
        base, client = opened, opened.client
    else:
        base = _shared(ctx.principal, ctx.upstream, ctx.method, ctx.name, ctx.public_name)
        client = f"client-{ctx.client_id}"
    return msgspec.structs.replace(
        base,
        event=event,
        client=client,
        request_id=clean(request_id) if isinstance(request_id, str) else request_id,
        decision=decision,
        plugin=plugin,
        reason=None if reason is None else clean(reason),
        duration_ms=duration_ms,
        request_bytes=request_bytes,
        response_bytes=response_bytes,
        error_code=error_code,
        payload=payload,
    )


@functools.lru_cache(maxsize=4096)
def _shared(
    principal: Principal | None,
    upstream: str,
    method: str,
    name: str | None,
    public_name: str | None,
) -> AuditEntry:
    """What every record of every call by one caller through one name says alike, cleaned
    and built once (a call's records copy it and add their own fields: a copy costs a
    fraction of building and cleaning the entry anew, three times a call). Not keyed by the
    client: a 2026-07-28 request is a client of its own, so that key would always miss."""
    who, groups = (None, None) if principal is None else _who(principal)
    return AuditEntry(
        event="request",
        principal=who,
        groups=groups,
        server=upstream or None,  # none: refused before it was routed
        method=clean_name(method),
        tool=clean_optional(name),
        public_name=clean_optional(public_name),
    )


def _who(principal: Principal) -> tuple[str, tuple[str, ...] | None]:
    """A principal as records name it."""
    return clean_name(principal.name), tuple(clean_name(g) for g in principal.groups) or None
