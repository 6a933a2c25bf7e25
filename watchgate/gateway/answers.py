"""The two ways a client's call ends without the server's answer, written once.

Every call that went through ``on_request`` passes ``on_response`` exactly once, whatever ended
it (hooks.py): the audit log records it, the plugins see it. So a call refused or failed by the
gateway is answered through `answer_error` (the hooks, then the client), and a call that ends
with nobody to answer (cancelled, its client gone) through `end_unanswered` (the hooks only).
"""

from __future__ import annotations

from watchgate.errors import JsonRpcError
from watchgate.gateway.ports import ClientPort
from watchgate.hooks import CallContext, HookChain, cancelled_response
from watchgate.protocol.jsonrpc import RequestId, error_response

__all__ = ["answer_error", "end_unanswered"]


async def answer_error(
    hooks: HookChain,
    client: ClientPort,
    request_id: RequestId | None,
    ctx: CallContext | None,
    error: JsonRpcError,
) -> None:
    """Answer the client's request ``request_id`` with ``error``, as the hooks leave it."""
    answer = error_response(request_id, error)
    if ctx is not None:
        answer = await hooks.on_response(ctx, answer)
    await client.send(answer)


async def end_unanswered(hooks: HookChain, ctx: CallContext | None, reason: str) -> None:
    """A call ended with no answer to send (cancelled, or its client left): the hooks see it end."""
    if ctx is not None:
        await hooks.on_response(ctx, cancelled_response(ctx, reason))
