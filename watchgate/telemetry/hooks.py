"""Spans and metrics from the message path (a ``MessageHooks``, ``watchgate/hooks.py``).

Per client request that reaches an upstream: a server span named ``<method> <name>``, a child
client span for the upstream call, and a child span per plugin decision. The request's own
``traceparent`` (its ``_meta``, W3C trace context) is continued, and the upstream call's is
passed on in the forwarded request's ``_meta``, so a trace crosses the gateway. Attributes name
the server, the method, the tool (as the client called it and as the server knows it), the
decision, the sizes and the error code: never arguments, results or a plugin's reasons (which
may quote them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import msgspec
import trio
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from watchgate.hooks import REQUEST_CANCELLED, CallContext
from watchgate.protocol import jsonrpc
from watchgate.protocol.jsonrpc import Message

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter
    from opentelemetry.trace import Span, Tracer

__all__ = ["TelemetryHooks"]

_NAMED: Final = frozenset({"tools/call", "prompts/get"})
_TRACE_KEYS: Final = ("traceparent", "tracestate")


@dataclass(slots=True)
class _Call:
    request: Span
    upstream: Span


class TelemetryHooks:
    hook_name = "telemetry"

    def __init__(self, tracer: Tracer, meter: Meter) -> None:
        self._tracer = tracer
        self._calls: dict[int, _Call] = {}  # id(ctx) -> its spans, from on_request to on_response
        self._count = meter.create_counter("watchgate.calls", description="client requests forwarded")
        self._errors = meter.create_counter("watchgate.errors", description="requests answered with an error")
        self._latency = meter.create_histogram(
            "watchgate.call.duration", unit="ms", description="from routing to the answer"
        )

    async def on_request(self, ctx: CallContext, msg: Message) -> Message:
        params = jsonrpc.load(msg.params) if msg.params is not msgspec.UNSET else {}
        params = params if isinstance(params, dict) else None  # the server says what is wrong
        meta = params.get("_meta") if params is not None else None
        meta = dict(meta) if isinstance(meta, dict) else {}
        parent = propagate.extract({key: meta[key] for key in _TRACE_KEYS if isinstance(meta.get(key), str)})
        request = self._tracer.start_span(
            _span_name(ctx),
            context=parent,
            kind=SpanKind.SERVER,
            attributes=_attributes(ctx),
        )
        upstream = self._tracer.start_span(
            f"{ctx.method} {ctx.upstream}",
            context=trace.set_span_in_context(request),
            kind=SpanKind.CLIENT,
            attributes={"mcp.server": ctx.upstream},
        )
        self._calls[id(ctx)] = _Call(request, upstream)
        if params is None:
            return msg
        propagate.inject(meta, context=trace.set_span_in_context(upstream))  # the server's parent: ours
        return msg.with_params(jsonrpc.raw({**params, "_meta": meta}))

    async def on_response(self, ctx: CallContext, msg: Message) -> Message:
        call = self._calls.pop(id(ctx), None)
        now = time.time_ns()
        if call is None:  # denied before this hook saw the request: the span covers what happened
            started = now - int((trio.current_time() - ctx.started) * 1e9)
            request = self._tracer.start_span(
                _span_name(ctx),
                kind=SpanKind.SERVER,
                attributes=_attributes(ctx),
                start_time=started,
            )
            call = _Call(request, trace.INVALID_SPAN)
        code = jsonrpc.error_code(msg)
        body = msg.error if msg.is_error else msg.result
        decision = "deny" if ctx.denial() else ("error" if code is not None else "allow")
        context = trace.set_span_in_context(call.request)
        for each in ctx.decisions:  # what each plugin decided; its reason may quote the call: left out
            span = self._tracer.start_span(f"plugin {each.plugin}", context=context, start_time=now)
            span.set_attributes(
                {
                    "watchgate.plugin": each.plugin,
                    "watchgate.stage": each.stage,
                    "watchgate.decision": each.action,
                }
            )
            span.end(end_time=now)
        if code is not None:
            call.upstream.set_attribute("rpc.jsonrpc.error_code", code)
            call.upstream.set_status(Status(StatusCode.ERROR))
        call.upstream.end(end_time=now)
        call.request.set_attributes(
            {
                "watchgate.decision": decision,
                "watchgate.response.size": len(body) if isinstance(body, msgspec.Raw) else 0,
                **({"rpc.jsonrpc.error_code": code} if code is not None else {}),
            }
        )
        if code is not None and code != REQUEST_CANCELLED:
            call.request.set_status(Status(StatusCode.ERROR))
        call.request.end(end_time=now)
        labels = _labels(ctx)
        self._count.add(1, {**labels, "decision": decision})
        if code is not None:
            self._errors.add(1, {**labels, "code": code})
        self._latency.record((trio.current_time() - ctx.started) * 1000, labels)
        return msg

    async def on_notification(self, upstream: str, server: str | None, msg: Message) -> Message | None:
        return msg

    async def on_list(
        self, upstream: str, server: str | None, kind: str, items: list[dict[str, msgspec.Raw]]
    ) -> list[dict[str, msgspec.Raw]]:
        return items


def _span_name(ctx: CallContext) -> str:
    """``tools/call <name>`` or ``prompts/get <name>``; the method alone for anything else (a
    resource URI in a span name would make one name per file, and may carry what it reads).
    Only names a server listed get this far: a made-up one is refused before the hooks."""
    if ctx.method in _NAMED and ctx.public_name:
        return f"{ctx.method} {ctx.public_name}"
    return ctx.method


def _attributes(ctx: CallContext) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "mcp.method.name": ctx.method,
        "mcp.server": ctx.upstream,
        "watchgate.client": f"client-{ctx.client_id}",
        "watchgate.request.size": ctx.request_bytes,
    }
    if ctx.principal is not None:  # who called: its name and groups, never a token or claim
        attributes["watchgate.principal"] = ctx.principal.name
        if ctx.principal.groups:
            attributes["watchgate.principal.groups"] = list(ctx.principal.groups)
    if ctx.method in _NAMED and ctx.name is not None:
        attributes["mcp.tool.name" if ctx.method == "tools/call" else "mcp.prompt.name"] = ctx.name
        attributes["watchgate.public_name"] = ctx.public_name or ctx.name
    return attributes


def _labels(ctx: CallContext) -> dict[str, str]:
    """Metric attributes: server and tool (a resource URI would make a series per file)."""
    labels = {"server": ctx.upstream, "method": ctx.method}
    if ctx.principal is not None:
        labels["principal"] = ctx.principal.name
    if ctx.method in _NAMED and ctx.name is not None:
        labels["tool"] = ctx.name
    return labels
