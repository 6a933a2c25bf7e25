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
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import msgspec
import trio
from msgspec import UNSET

from actors import Actor, Reply
from watchgate.answer_group import GroupCommit, current_group
from watchgate.errors import (
    JsonRpcError,
    LineTooLong,
    PeerGone,
    UpstreamExited,
    UpstreamStartError,
    UpstreamUnavailable,
)
from watchgate.gateway.answers import answer_error, end_unanswered
from watchgate.gateway.messages import (
    ClientGone,
    ForwardAnswer,
    ForwardCancel,
    ForwardRequest,
    InternalRequest,
)
from watchgate.gateway.ports import NotifierPort, RouterPort
from watchgate.gateway.upstreams.handshake import handshake
from watchgate.gateway.upstreams.inflight import InFlightTable, Pending
from watchgate.gateway.upstreams.initiated import ServerInitiated
from watchgate.gateway.upstreams.liveness import Liveness
from watchgate.gateway.upstreams.serverlog import ServerLog
from watchgate.gateway.upstreams.session import (
    ServerRequests,
    cancel_line,
    error_from,
    swap_progress_token,
)
from watchgate.hooks import HookChain
from watchgate.protocol import eras, jsonrpc
from watchgate.protocol.jsonrpc import Kind, Line, Message, error_response
from watchgate.protocol.namespace import rewrite_result
from watchgate.sanitize import clean
from watchgate.transports.connectors import default_connector

if TYPE_CHECKING:
    from watchgate.config.schema import UpstreamConfig
    from watchgate.transports.base import Connector, UpstreamConnection

UpstreamMessage = ForwardRequest | InternalRequest | ForwardCancel | ForwardAnswer | ClientGone

_BATCH: Final = 256
_PROGRESS_MARK: Final = re.compile(rb'"progressToken"')
_log = logging.getLogger("watchgate.upstream")


class UpstreamActor(Actor[UpstreamMessage]):
    def __init__(
        self,
        config: UpstreamConfig,
        *,
        router: RouterPort,
        notifier: NotifierPort,
        prefixed: bool,
        connector: Connector = default_connector,
        hooks: HookChain | None = None,
        mailbox_size: int = 1024,
    ) -> None:
        super().__init__(config.name, mailbox_size=mailbox_size)
        self.config = config
        self._connect = connector
        self._router = router
        self._notifier = notifier
        self._prefixed = prefixed  # clients see its names as <name>__tool and <name>+uri
        self._hooks = hooks if hooks is not None else HookChain()
        self._inflight = InFlightTable()
        self._asked = ServerRequests(config.name)
        # what the server sends on its own: notifications, and requests to a client
        self._initiated = ServerInitiated(
            self,
            self._inflight,
            self._asked,
            self._write,
            router=router,
            notifier=notifier,
            prefixed=prefixed,
            hooks=self._hooks,
        )
        self._process: UpstreamConnection | None = None
        self._exit_reason: str | None = None
        self.needs_login = False  # the last incarnation ended wanting `watchgate auth login NAME`
        self._liveness = Liveness(
            self.name, config, self._inflight, self._answer_error, self._write, self.tell
        )
        self.stderr_tail: list[str] = []
        self.log = ServerLog()

    # --- observed state, for ps and errors -----------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def sandbox(self) -> str:
        """How the server is confined, for ps: what the running process says, else the config."""
        label = self._process.describe().sandbox if self._process is not None else None
        if label is not None:
            return label
        sandbox = self.config.sandbox
        if sandbox is None or not sandbox.enabled:
            return "-"
        return "bwrap" if sandbox.network else "bwrap net:off"

    @property
    def also_speaks(self) -> tuple[str, ...]:
        """Versions spoken beside the handshake's (a legacy session beside a 2026-07-28 one)."""
        return self._process.describe().also_speaks if self._process is not None else ()

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    def in_flight_of(self, client_id: int) -> int:
        return len(self._inflight.of_client(client_id))

    # --- one incarnation -----------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with self.incarnation():
            self._exit_reason = None
            self._clean_exit = False  # it exited by itself with code 0 (a transient server is done)
            self._liveness.timeouts_in_a_row = 0
            try:
                try:
                    async with self._connect(self.config) as process:
                        self._process = process
                        try:
                            async with trio.open_nursery() as nursery:
                                nursery.start_soon(process.pump_stderr, self.log.stderr)
                                nursery.start_soon(self._read_loop, process, nursery.cancel_scope)
                                nursery.start_soon(process.pump_side, self._on_burst)
                                nursery.start_soon(self._watch_exit, process, nursery.cancel_scope)
                                ready = await handshake(
                                    self.name,
                                    self.config.startup_timeout,
                                    self._call_now,
                                    self._write,
                                    process.stderr_tail,
                                )
                                task_status.started()
                                self.needs_login = False
                                await self._router.tell(ready)
                                nursery.start_soon(
                                    self._until_hung, self._liveness.expire, nursery.cancel_scope
                                )
                                if self.config.ping_interval:
                                    nursery.start_soon(
                                        self._until_hung, self._liveness.probe, nursery.cancel_scope
                                    )
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
                    self.needs_login = start_error.needs_login
                    raise start_error from None
                except UpstreamStartError as exc:
                    self._exit_reason = str(exc)
                    self.needs_login = exc.needs_login
                    raise
            finally:
                self._process = None
                await self._fail_everything(self._exit_reason or "stopped")
            if self._exit_reason is not None and not self._clean_exit:
                raise UpstreamExited(self._exit_reason)

    async def _call_now(self, method: str, params: Any) -> msgspec.Raw:
        """Send a request outside the mailbox (the handshake happens before the mailbox opens)."""
        reply: Reply[msgspec.Raw] = Reply()
        pending = self._inflight.add(method, self._deadline(), reply=reply)
        await self._write([jsonrpc.encode(jsonrpc.request(pending.gateway_id, method, params)) + b"\n"])
        return await reply.wait()

    def _deadline(self) -> float:
        return trio.current_time() + self.config.request_timeout

    async def _write(self, lines: Sequence[Line]) -> None:
        transport = self._process
        if transport is not None:
            with contextlib.suppress(PeerGone):  # its receive side sees the end and ends the incarnation
                await transport.send(lines)

    # --- client -> upstream --------------------------------------------------------------------
    async def forward(self, request: ForwardRequest) -> None:
        """Send a client's request: straight to the process's stdin, in the caller's task, when
        it is the only call in flight and the writer is idle (one task hop less for a lone call;
        see outbox.py); through the mailbox otherwise, where requests go out in batches."""
        transport = self._process
        pipe = transport.fast_path if transport is not None else None
        if (
            self.idle  # the idle-writer bypass (Actor.idle)
            and transport is not None
            and pipe is not None
            and not self._inflight
            and pipe.ready
        ):
            line = self._forward(request)
            pipe = transport.fast_path  # the request may have closed it (a second era's process)
            if pipe is None:
                await self._write([line])
                return
            try:
                sent = pipe.send_nowait(line)
                if sent < len(line):
                    # the rest right away, under the outbox's lock (taken before anything can
                    # run): no other line (a ping answer, a cancellation) may land inside this one
                    await pipe.send(line[sent:])
            except PeerGone:
                return  # the process is gone: the read loop ends the incarnation, failing this call
            return
        await self.tell(request)

    async def _write_loop(self, process: UpstreamConnection) -> None:
        while True:
            # idle (Actor.idle) only while waiting here, not until the batch is written: a
            # request written past it meanwhile could land between the parts of a line
            batch = await self.receive_batch(_BATCH)
            chunks = [data for msg in batch if (data := await self._outgoing(msg))]
            if chunks:
                await self._write(chunks)

    async def _outgoing(self, msg: UpstreamMessage) -> Line | None:
        if isinstance(msg, ForwardRequest):
            if msg.client.finished:  # queued before its client left: nobody waits for the answer
                await end_unanswered(self._hooks, msg.ctx, "client left")
                return None
            return self._forward(msg)
        if isinstance(msg, InternalRequest):
            internal = self._inflight.add(msg.method, self._deadline(), reply=msg.reply)
            return _line(jsonrpc.request(internal.gateway_id, msg.method, msg.params))
        if isinstance(msg, ForwardCancel):
            cancelled = self._inflight.find(msg.client.client_id, msg.request_id)
            if cancelled is None:
                return None
            self._inflight.pop(cancelled.gateway_id)
            await end_unanswered(self._hooks, cancelled.ctx, "by the client")
            return cancel_line(cancelled.gateway_id, msg.reason)
        if isinstance(msg, ForwardAnswer):
            assert isinstance(msg.msg.id, str)
            upstream_id = self._asked.answered(msg.msg.id)
            return None if upstream_id is None else _line(msg.msg.with_id(upstream_id))
        return await self._client_gone(msg.client_id)

    def _forward(self, msg: ForwardRequest) -> Line:
        request = msg.msg
        assert request.id is not None and request.id is not UNSET
        pending = self._inflight.add(
            msg.method,
            self._deadline(),
            client=msg.client,
            client_request_id=request.id,
            ctx=msg.ctx,
            slot=msg.slot,
        )
        out = request.with_id(pending.gateway_id)
        if self._process is not None:
            declared = msg.client.relays_input(request.id)
            if declared is not None:
                # a 2026-07-28 client answers a 2026-07-28 server's input_required itself (MRTR)
                self._process.relay_input(pending.gateway_id, declared)
            else:  # a 2025-11-25 client: a server of both eras hears it in its own era
                self._process.legacy_client(pending.gateway_id)
        params = request.params
        if params is not UNSET and _PROGRESS_MARK.search(params) is not None:
            token, new_params = swap_progress_token(request, pending.gateway_id, msg.fields)
            if token is not None:
                pending.progress_token = token
                out = out.with_params(new_params)
        return _line(out)

    async def _client_gone(self, client_id: int) -> Line | None:
        lines: list[Line] = []
        for pending in self._inflight.of_client(client_id):
            if self._inflight.pop(pending.gateway_id):
                lines.append(cancel_line(pending.gateway_id, "client disconnected"))
                await end_unanswered(self._hooks, pending.ctx, "client left")
        for upstream_id in self._asked.drop_client(client_id):
            error = JsonRpcError(jsonrpc.INTERNAL_ERROR, "the client that was asked has disconnected")
            lines.append(_line(error_response(upstream_id, error)))
        return b"".join(lines) or None

    # --- upstream -> client --------------------------------------------------------------------
    async def _on_burst(self, burst: list[bytes]) -> None:
        # a burst of one line gains nothing from a group: its record is written inline, at once
        if self._hooks.empty or len(burst) == 1:
            for line in burst:
                await self._on_line(line)
            return
        async with GroupCommit():  # a burst's records written at once (group commit)
            for line in burst:
                await self._on_line(line)

    async def _read_loop(self, process: UpstreamConnection, scope: trio.CancelScope) -> None:
        try:
            async for burst in process.receive():
                await self._on_burst(burst)
        except LineTooLong as exc:
            self._exit_reason = f"protocol error: {exc}"
            scope.cancel()
            return
        with trio.move_on_after(self.config.shutdown_timeout):
            await process.wait()
        await self._last_words(process)
        ending = process.ending()
        self._exit_reason, self._clean_exit = str(ending), ending.clean
        self.needs_login = process.describe().needs_login  # a remote server wants `auth login`
        _log.debug("[%s] %s", self.name, self._exit_reason)  # the supervisor's event says it, once
        scope.cancel()

    async def _last_words(self, process: UpstreamConnection) -> None:
        """Let stderr be read to its end (a moment) so the exit reason quotes the last line."""
        with trio.move_on_after(1):
            await process.drained()

    async def _watch_exit(self, process: UpstreamConnection, incarnation: trio.CancelScope) -> None:
        """See the process end from the process itself: a descendant holding its stdout open
        would otherwise hide the exit until every call in flight timed out."""
        await process.wait()
        await trio.sleep(1)  # normally the reader meets the end of stdout meanwhile and says why
        await self._last_words(process)
        ending = process.ending()
        self._exit_reason, self._clean_exit = str(ending), ending.clean
        self.needs_login = process.describe().needs_login  # a remote server wants `auth login`
        _log.warning(
            "[%s] %s (its stdout is still held open by a process it started)", self.name, self._exit_reason
        )
        incarnation.cancel()

    async def _on_line(self, line: bytes) -> None:
        try:
            msg = jsonrpc.decode(line)
            kind = msg.kind
            if kind is Kind.RESPONSE:
                await self._on_response(msg)
            elif kind is Kind.NOTIFICATION:
                await self._initiated.notification(msg)
            else:
                await self._initiated.request(msg)
        except JsonRpcError as exc:  # also params the gateway must read (progress, cancelled)
            quoted = clean(repr(line[:200]))  # what a server sent reaches the log only cleaned
            _log.warning("[%s] sent a bad message (%s): %s", self.name, exc.message, quoted)

    async def _on_response(self, msg: Message) -> None:
        self._liveness.timeouts_in_a_row = 0  # it answers: not hung
        pending = self._inflight.pop(msg.id) if isinstance(msg.id, int) else None
        if pending is None:
            _log.debug("[%s] answer to unknown or cancelled request %r", self.name, msg.id)
            return
        if pending.reply is not None:
            if msg.is_error:
                pending.reply.fail(error_from(msg))
            else:
                pending.reply.set(msg.result)  # type: ignore[arg-type]
            return
        out = msg.with_id(pending.client_request_id)
        if self._prefixed and msg.result is not UNSET:
            result = rewrite_result(pending.method, self.name, msg.result)
            if result is not msg.result:
                out = out.with_result(result)
        client = pending.client
        assert client is not None
        if pending.ctx is not None:
            judged = await self._hooks.on_response(pending.ctx, out)
            # a result a plugin changed keeps no cache hints of the server's (ADR-024)
            out = judged if judged is out else eras.without_cache_hints(judged)
            group = current_group()
            if group is not None:
                request_id = pending.client_request_id

                async def release(error: JsonRpcError | None) -> None:
                    await client.send(out if error is None else error_response(request_id, error))

                if group.hold(release, at_once=lambda: client.sends_now(out)):
                    return
        await client.send(out)

    # --- endings -------------------------------------------------------------------------------
    async def _until_hung(self, watch: Callable[[], Awaitable[str]], incarnation: trio.CancelScope) -> None:
        """End the incarnation once ``watch`` finds the server hung (the supervisor restarts it
        as after a crash), saying why."""
        self._exit_reason = await watch()
        _log.warning("[%s] %s; restarting it", self.name, self._exit_reason)
        incarnation.cancel()

    async def _cancel_client_requests(self, reason: str) -> None:
        """Tell the upstream to drop the clients' requests before it is closed (they get -32003)."""
        lines = [cancel_line(p.gateway_id, reason) for p in self._inflight if p.client is not None]
        if lines:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await self._write(lines)

    async def _fail_everything(self, reason: str) -> None:
        """Answer everything in flight or queued with -32003: the incarnation is over."""
        state = "stopped" if self._exit_reason is None else "exited"  # the reason says how
        error = UpstreamUnavailable(self.name, state, reason)
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            for pending in self._inflight.drain():
                await self._answer_error(pending, error)
            self._asked.clear()
            await self.reject_queued(error)

    async def answer_in_flight(self, reason: str) -> None:
        """Answer every call in flight or queued with -32003 now, and cancel them upstream: the
        gateway is going down and its clients are about to be let go (``watchgate down``)."""
        error = UpstreamUnavailable(self.name, "stopping", reason)
        await self._cancel_client_requests(reason)
        for pending in self._inflight.drain():
            await self._answer_error(pending, error)
        await self.reject_queued(error)

    async def reject_queued(self, error: JsonRpcError | None = None) -> None:
        """Answer what waits in the mailbox while no incarnation runs (called by the supervisor hook)."""
        if error is None:
            error = UpstreamUnavailable(self.name, "stopped", self._exit_reason)
        for msg in self.drain_nowait():
            if isinstance(msg, ForwardRequest):
                assert msg.msg.id is not UNSET
                await answer_error(self._hooks, msg.client, msg.msg.id, msg.ctx, error)
            elif isinstance(msg, InternalRequest):
                msg.reply.fail(error)

    async def _answer_error(self, pending: Pending, error: JsonRpcError) -> None:
        if pending.reply is not None:
            pending.reply.fail(error)
        elif pending.client is not None:
            await answer_error(self._hooks, pending.client, pending.client_request_id, pending.ctx, error)


def _line(msg: Message) -> Line:
    return jsonrpc.encode_line(msg)


def _sole(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception inside nested single-member groups, or the group itself."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
