"""One actor per upstream MCP server: it owns the process, the session and every id on it.

Each ``run()`` is one incarnation: spawn, ``initialize`` handshake, then pump messages both ways
until the process ends. The supervisor calls ``run()`` again per the restart policy; the mailbox
outlives incarnations. Whatever was in flight when an incarnation ends is answered at once with
-32003 naming the server and the reason: a client never waits on a dead process.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import TYPE_CHECKING, Any, Final

import msgspec
import trio
from msgspec import UNSET

from actors import Actor
from watchgate import __version__, jsonrpc
from watchgate.connection import default_connector
from watchgate.errors import (
    JsonRpcError,
    UpstreamExited,
    UpstreamStartError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from watchgate.hooks import HookChain, cancelled_response
from watchgate.inflight import InFlightTable, Pending
from watchgate.jsonrpc import Kind, Line, LineReader, LineTooLong, Message
from watchgate.messages import (
    ClientGone,
    ForwardAnswer,
    ForwardCancel,
    ForwardRequest,
    InternalRequest,
    UnsentRest,
    UpstreamNotification,
    UpstreamReady,
)
from watchgate.namespace import rewrite_result
from watchgate.outbox import Outbox
from watchgate.serverlog import ServerLog

if TYPE_CHECKING:
    from watchgate.client import ClientActor
    from watchgate.config import UpstreamConfig
    from watchgate.connection import Connector, UpstreamConnection
    from watchgate.notifications import NotificationActor
    from watchgate.router import RouterActor

UpstreamMessage = ForwardRequest | InternalRequest | ForwardCancel | ForwardAnswer | ClientGone | UnsentRest

PROTOCOL_VERSION: Final = "2025-11-25"
KNOWN_VERSIONS: Final = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"})
_BATCH: Final = 256
_PROGRESS_MARK: Final = re.compile(rb'"progressToken"')
_CLIENT_CAPABILITY: Final = {
    "sampling/createMessage": "sampling",
    "elicitation/create": "elicitation",
    "roots/list": "roots",
}
_log = logging.getLogger("watchgate.upstream")


class UpstreamActor(Actor[UpstreamMessage]):
    def __init__(
        self,
        config: UpstreamConfig,
        *,
        router: RouterActor,
        notifier: NotificationActor,
        multi_server: bool,
        connector: Connector = default_connector,
        hooks: HookChain | None = None,
        mailbox_size: int = 1024,
    ) -> None:
        super().__init__(config.name, mailbox_size=mailbox_size)
        self.config = config
        self._connect = connector
        self._router = router
        self._notifier = notifier
        self._multi = multi_server
        self._hooks = hooks if hooks is not None else HookChain()
        self._inflight = InFlightTable()
        self._server_requests: dict[str, tuple[ClientActor, int | str]] = {}
        self._next_server_request = 0
        self._outbox: Outbox | None = None  # the process's stdin, for one incarnation
        self._writer_idle = False  # the write loop waits for mail: a lone request may bypass it
        self._process: UpstreamConnection | None = None
        self._exit_reason: str | None = None
        self.stderr_tail: list[str] = []
        self.log = ServerLog()

    # --- observed state, for ps and errors -----------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    def in_flight_of(self, client_id: int) -> int:
        return len(self._inflight.of_client(client_id))

    async def handle(self, msg: UpstreamMessage) -> None:  # pragma: no cover - run() is overridden
        raise NotImplementedError

    # --- one incarnation -----------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with self.incarnation():
            self._exit_reason = None
            try:
                try:
                    async with self._connect(self.config) as process:
                        self._process, self._outbox = process, Outbox(process.stdin)
                        try:
                            async with trio.open_nursery() as nursery:
                                nursery.start_soon(process.pump_stderr, self.log.stderr)
                                nursery.start_soon(self._read_loop, process, nursery.cancel_scope)
                                ready = await self._handshake(process)
                                task_status.started()
                                await self._router.tell(ready)
                                nursery.start_soon(self._expire_loop)
                                await self._write_loop(process)
                        finally:
                            if self._exit_reason is None:  # stopped by the gateway: the peer still listens
                                await self._cancel_client_requests("the gateway stopped this server")
                        self.stderr_tail = list(process.stderr_tail)
                except BaseExceptionGroup as group:
                    # a failed handshake leaves through one or more nurseries: report its own words
                    start_error = _sole(group)
                    if not isinstance(start_error, UpstreamStartError):
                        raise
                    self._exit_reason = str(start_error)
                    raise start_error from None
                except UpstreamStartError as exc:
                    self._exit_reason = str(exc)
                    raise
            finally:
                self._process = self._outbox = None
                await self._fail_everything(self._exit_reason or "stopped")
            if self._exit_reason is not None and not self._exit_reason.startswith("exited with code 0"):
                raise UpstreamExited(self._exit_reason)

    async def _handshake(self, process: UpstreamConnection) -> UpstreamReady:
        params = {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {"sampling": {}, "elicitation": {}},
            "clientInfo": {"name": "watchgate", "version": __version__},
        }
        timeout = self.config.startup_timeout
        raw: msgspec.Raw | None = None
        with trio.move_on_after(timeout):
            raw = await self._call_now("initialize", params)
        if raw is None:
            reason = f"no answer to initialize within {timeout:g} s"
            if process.stderr_tail:
                reason += f"; stderr: {process.stderr_tail[-1]}"
            raise UpstreamStartError(reason)
        result = jsonrpc.load(raw)
        if not isinstance(result, dict):
            raise UpstreamStartError("initialize returned a result that is not an object")
        version = result.get("protocolVersion")
        if version not in KNOWN_VERSIONS:
            raise UpstreamStartError(f"unsupported protocol version {version!r}")
        await self._write(jsonrpc.encode(jsonrpc.notification("notifications/initialized")) + b"\n")
        _log.info("[%s] ready: %s, protocol %s", self.name, _describe(result), version)
        return UpstreamReady(
            server=self.name,
            capabilities=_dict(result.get("capabilities")),
            server_info=_dict(result.get("serverInfo")),
            instructions=result.get("instructions") if isinstance(result.get("instructions"), str) else None,
            protocol_version=version,
        )

    async def _call_now(self, method: str, params: Any) -> msgspec.Raw:
        """Send a request outside the mailbox (the handshake happens before the mailbox opens)."""
        from actors import Reply

        reply: Reply[msgspec.Raw] = Reply()
        pending = self._inflight.add(method, self._deadline(), reply=reply)
        await self._write(jsonrpc.encode(jsonrpc.request(pending.gateway_id, method, params)) + b"\n")
        return await reply.wait()

    def _deadline(self) -> float:
        return trio.current_time() + self.config.request_timeout

    async def _write(self, data: Line) -> None:
        outbox = self._outbox
        if outbox is None:
            return
        # a broken pipe means the process is gone: the read loop sees EOF and ends the incarnation
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await outbox.send_all(data)

    # --- client -> upstream --------------------------------------------------------------------
    async def forward(self, request: ForwardRequest) -> None:
        """Send a client's request: straight to the process's stdin, in the caller's task, when
        it is the only call in flight and the writer is idle (one task hop less for a lone call;
        see outbox.py); through the mailbox otherwise, where requests go out in batches."""
        outbox = self._outbox
        if (
            self._writer_idle
            and outbox is not None
            and not self._inflight
            and not self.has_unreceived
            and outbox.can_send_nowait
        ):
            line = self._forward(request)
            try:
                sent = outbox.try_send(line)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the process is gone: the read loop ends the incarnation, failing this call
            if sent < len(line):
                await self.tell(UnsentRest(line[sent:]))
            return
        await self.tell(request)

    async def _write_loop(self, process: UpstreamConnection) -> None:
        try:
            while True:
                self._writer_idle = True
                batch = await self.receive_batch(_BATCH)
                # not idle until the batch is written: a request written past it meanwhile could
                # land between the parts of a line that a full pipe split
                self._writer_idle = False
                chunks = [data for msg in batch if (data := await self._outgoing(msg))]
                if chunks:
                    await self._write(jsonrpc.join_lines(chunks))
        finally:
            self._writer_idle = False

    async def _outgoing(self, msg: UpstreamMessage) -> Line | None:
        if isinstance(msg, ForwardRequest):
            return self._forward(msg)
        if isinstance(msg, UnsentRest):
            return msg.data
        if isinstance(msg, InternalRequest):
            internal = self._inflight.add(msg.method, self._deadline(), reply=msg.reply)
            return _line(jsonrpc.request(internal.gateway_id, msg.method, msg.params))
        if isinstance(msg, ForwardCancel):
            cancelled = self._inflight.find(msg.client.client_id, msg.request_id)
            if cancelled is None:
                return None
            self._inflight.pop(cancelled.gateway_id)
            if cancelled.ctx is not None:  # the hooks see every call end, even unanswered ones
                await self._hooks.on_response(
                    cancelled.ctx, cancelled_response(cancelled.ctx, "by the client")
                )
            return _cancel_line(cancelled.gateway_id, msg.reason)
        if isinstance(msg, ForwardAnswer):
            assert isinstance(msg.msg.id, str)
            entry = self._server_requests.pop(msg.msg.id, None)
            return None if entry is None else _line(msg.msg.with_id(entry[1]))
        return await self._client_gone(msg.client_id)

    def _forward(self, msg: ForwardRequest) -> Line:
        request = msg.msg
        assert request.id is not None and request.id is not UNSET
        pending = self._inflight.add(
            msg.method, self._deadline(), client=msg.client, client_request_id=request.id, ctx=msg.ctx
        )
        out = request.with_id(pending.gateway_id)
        params = request.params
        if params is not UNSET and _PROGRESS_MARK.search(params) is not None:
            token, new_params = _swap_progress_token(request, pending.gateway_id)
            if token is not None:
                pending.progress_token = token
                out = out.with_params(new_params)
        return _line(out)

    async def _client_gone(self, client_id: int) -> Line | None:
        lines: list[Line] = []
        for pending in self._inflight.of_client(client_id):
            if self._inflight.pop(pending.gateway_id):
                lines.append(_cancel_line(pending.gateway_id, "client disconnected"))
                if pending.ctx is not None:
                    await self._hooks.on_response(pending.ctx, cancelled_response(pending.ctx, "client left"))
        for request_id, (client, upstream_id) in list(self._server_requests.items()):
            if client.client_id == client_id:
                del self._server_requests[request_id]
                error = JsonRpcError(jsonrpc.INTERNAL_ERROR, "the client that was asked has disconnected")
                lines.append(_line(error.to_response(upstream_id)))
        return b"".join(lines) or None

    # --- upstream -> client --------------------------------------------------------------------
    async def _read_loop(self, process: UpstreamConnection, scope: trio.CancelScope) -> None:
        try:
            async for line in LineReader(process.stdout):
                await self._on_line(line)
        except LineTooLong as exc:
            self._exit_reason = f"protocol error: {exc}"
            scope.cancel()
            return
        with trio.move_on_after(self.config.shutdown_timeout):
            await process.wait()
        self._exit_reason = process.describe_exit()
        _log.warning("[%s] %s", self.name, self._exit_reason)
        scope.cancel()

    async def _on_line(self, line: bytes) -> None:
        try:
            msg = jsonrpc.decode(line)
            kind = msg.kind
            if kind is Kind.RESPONSE:
                await self._on_response(msg)
            elif kind is Kind.NOTIFICATION:
                await self._on_notification(msg)
            else:
                await self._on_server_request(msg)
        except JsonRpcError as exc:  # also params the gateway must read (progress, cancelled)
            _log.warning("[%s] sent a bad message (%s): %.200r", self.name, exc.message, line)

    async def _on_response(self, msg: Message) -> None:
        pending = self._inflight.pop(msg.id) if isinstance(msg.id, int) else None
        if pending is None:
            _log.debug("[%s] answer to unknown or cancelled request %r", self.name, msg.id)
            return
        if pending.reply is not None:
            if msg.is_error:
                pending.reply.fail(_error_from(msg))
            else:
                pending.reply.set(msg.result)  # type: ignore[arg-type]
            return
        out = msg.with_id(pending.client_request_id)
        if self._multi and msg.result is not UNSET:
            result = rewrite_result(pending.method, self.name, msg.result)
            if result is not msg.result:
                out = out.with_result(result)
        if pending.ctx is not None:
            out = await self._hooks.on_response(pending.ctx, out)
        assert pending.client is not None
        await pending.client.send(out)

    async def _on_notification(self, msg: Message) -> None:
        if msg.method == "notifications/progress":
            await self._on_progress(msg)
        elif msg.method == "notifications/cancelled":
            await self._on_server_cancel(msg)
        else:
            await self._notifier.tell(UpstreamNotification(self.name, msg))

    async def _on_progress(self, msg: Message) -> None:
        fields = jsonrpc.params_fields(msg)
        token = jsonrpc.load(fields.get("progressToken", UNSET))
        pending = self._inflight.get(token) if isinstance(token, int) else None
        if pending is None or pending.client is None or pending.progress_token is None:
            return  # progress for a request that is already answered or cancelled
        fields["progressToken"] = jsonrpc.raw(pending.progress_token)
        out = msg.with_params(jsonrpc.raw_fields(fields))
        if not self._hooks.empty:
            checked = await self._hooks.on_notification(self.name, self.name if self._multi else None, out)
            if checked is None:
                return
            out = checked
        await pending.client.send(out)

    async def _on_server_cancel(self, msg: Message) -> None:
        fields = jsonrpc.params_fields(msg)
        upstream_id = jsonrpc.load(fields.get("requestId", UNSET))
        for request_id, (client, their_id) in list(self._server_requests.items()):
            if their_id == upstream_id:
                del self._server_requests[request_id]
                fields["requestId"] = jsonrpc.raw(request_id)
                await client.send(msg.with_params(jsonrpc.raw_fields(fields)))

    async def _on_server_request(self, msg: Message) -> None:
        assert msg.id is not None and msg.id is not UNSET and msg.method is not UNSET
        if msg.method == "ping":
            await self._write(_line(jsonrpc.result_response(msg.id, {})))
            return
        client = self._inflight.latest_client()
        capability = _CLIENT_CAPABILITY.get(msg.method)
        if client is None or capability is None or capability not in client.capabilities:
            why = (
                f"no client with the {capability!r} capability has a request in flight on {self.name!r}"
                if capability
                else f"{msg.method!r} is not a request the gateway forwards to clients"
            )
            error = JsonRpcError(jsonrpc.METHOD_NOT_FOUND, why)
            await self._write(_line(error.to_response(msg.id)))
            return
        self._next_server_request += 1
        request_id = f"wg-{self.name}-{self._next_server_request}"
        self._server_requests[request_id] = (client, msg.id)
        client.expect_answer(request_id, self)
        await client.send(msg.with_id(request_id))

    # --- endings -------------------------------------------------------------------------------
    async def _expire_loop(self) -> None:
        timeout = self.config.request_timeout
        while True:
            deadline = self._inflight.next_deadline()
            if deadline is None:
                await trio.sleep(timeout)
                continue
            await trio.sleep_until(deadline)
            for pending in self._inflight.pop_expired(trio.current_time()):
                error = UpstreamTimeout(self.name, timeout)
                await self._answer_error(pending, error)
                await self._write(_cancel_line(pending.gateway_id, "timed out in the gateway"))

    async def _cancel_client_requests(self, reason: str) -> None:
        """Tell the upstream to drop the clients' requests before it is closed (they get -32003)."""
        lines = [_cancel_line(p.gateway_id, reason) for p in self._inflight if p.client is not None]
        if lines:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await self._write(b"".join(lines))

    async def _fail_everything(self, reason: str) -> None:
        """Answer everything in flight or queued with -32003: the incarnation is over."""
        if self._exit_reason is None:
            state = "stopped"
        else:
            state = "exited" if self._exit_reason.startswith("exited with code 0") else "crashed"
        error = UpstreamUnavailable(self.name, state, reason)
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            for pending in self._inflight.drain():
                await self._answer_error(pending, error)
            for client, upstream_id in self._server_requests.values():
                _log.debug(
                    "[%s] dropping server request %r for client %d", self.name, upstream_id, client.client_id
                )
            self._server_requests.clear()
            await self.reject_queued(error)

    async def reject_queued(self, error: JsonRpcError | None = None) -> None:
        """Answer what waits in the mailbox while no incarnation runs (called by the supervisor hook)."""
        if error is None:
            error = UpstreamUnavailable(self.name, "stopped", self._exit_reason)
        for msg in self.drain_nowait():
            if isinstance(msg, ForwardRequest):
                assert msg.msg.id is not None and msg.msg.id is not UNSET
                answer = error.to_response(msg.msg.id)
                if msg.ctx is not None:
                    answer = await self._hooks.on_response(msg.ctx, answer)
                await msg.client.send(answer)
            elif isinstance(msg, InternalRequest):
                msg.reply.fail(error)

    async def _answer_error(self, pending: Pending, error: JsonRpcError) -> None:
        if pending.reply is not None:
            pending.reply.fail(error)
        elif pending.client is not None:
            answer = error.to_response(pending.client_request_id)
            if pending.ctx is not None:
                answer = await self._hooks.on_response(pending.ctx, answer)
            await pending.client.send(answer)


def _line(msg: Message) -> Line:
    return jsonrpc.encode_line(msg)


def _cancel_line(request_id: int, reason: str | None) -> Line:
    params: dict[str, Any] = {"requestId": request_id}
    if reason:
        params["reason"] = reason
    return _line(jsonrpc.notification("notifications/cancelled", params))


def _swap_progress_token(request: Message, gateway_id: int) -> tuple[Any, msgspec.Raw]:
    """Replace the client's progress token with the gateway id; return the client's and new params."""
    fields = jsonrpc.params_fields(request)
    meta = msgspec.json.decode(fields["_meta"]) if "_meta" in fields else {}
    if not isinstance(meta, dict) or "progressToken" not in meta:
        return None, request.params  # type: ignore[return-value]
    token = meta["progressToken"]
    meta["progressToken"] = gateway_id
    fields["_meta"] = jsonrpc.raw(meta)
    return token, jsonrpc.raw_fields(fields)


def _error_from(msg: Message) -> JsonRpcError:
    body = jsonrpc.load(msg.error)
    if isinstance(body, dict):
        code = body.get("code")
        return JsonRpcError(
            code if isinstance(code, int) else jsonrpc.INTERNAL_ERROR,
            str(body.get("message", "upstream error")),
            body.get("data"),
        )
    return JsonRpcError(jsonrpc.INTERNAL_ERROR, "upstream returned a malformed error")


def _sole(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception inside nested single-member groups, or the group itself."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _describe(result: dict[str, Any]) -> str:
    info = _dict(result.get("serverInfo"))
    return f"{info.get('name', '?')} {info.get('version', '')}".strip()
