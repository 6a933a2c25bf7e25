"""Whether an upstream is still of use: alive is not enough (design.md §12, in
docs/development/design.md: a hung server is restarted).

Two watches per incarnation, each returning why once the server is hung: ``expire`` answers each
request that outlives ``request_timeout`` (-32001) and cancels it upstream, and a server that
lets ``max_timeouts`` of them time out in a row, answering nothing in between, is hung (busy all
the time, so never pinged); ``probe`` pings a server no client is waiting on every
``ping_interval`` and finds it hung when it does not answer within ``ping_timeout``. Any answer,
an error too, is a sign of life; a busy server is left to ``request_timeout``, since a long call
may block a server that handles one request at a time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from actors import Reply
from watchgate.errors import JsonRpcError, UpstreamTimeout
from watchgate.gateway.messages import InternalRequest
from watchgate.gateway.upstreams.inflight import InFlightTable, Pending
from watchgate.gateway.upstreams.session import cancel_line
from watchgate.protocol.jsonrpc import Line

if TYPE_CHECKING:
    from watchgate.config.schema import UpstreamConfig

__all__ = ["Liveness"]


class Liveness:
    def __init__(
        self,
        name: str,
        config: UpstreamConfig,
        inflight: InFlightTable,
        answer_error: Callable[[Pending, JsonRpcError], Awaitable[None]],
        write: Callable[[Sequence[Line]], Awaitable[None]],
        tell: Callable[[Any], Awaitable[None]],
    ) -> None:
        self._name = name
        self._config = config
        self._inflight = inflight
        self._answer_error = answer_error
        self._write = write
        self._tell = tell
        self.timeouts_in_a_row = 0  # request timeouts since the server last answered anything

    async def expire(self) -> str:
        timeout = self._config.request_timeout
        while True:
            deadline = self._inflight.next_deadline()
            if deadline is None:
                await trio.sleep(timeout)
                continue
            await trio.sleep_until(deadline)
            for pending in self._inflight.pop_expired(trio.current_time()):
                await self._answer_error(pending, UpstreamTimeout(self._name, timeout))
                await self._write([cancel_line(pending.gateway_id, "timed out in the gateway")])
                self.timeouts_in_a_row += 1
            limit = self._config.max_timeouts
            if limit and self.timeouts_in_a_row >= limit:
                return f"{self.timeouts_in_a_row} requests in a row timed out ({timeout:g} s)"

    async def probe(self) -> str:
        interval, timeout = self._config.ping_interval, self._config.ping_timeout
        while True:
            await trio.sleep(interval)
            if self._inflight.has_client_requests():
                continue
            reply: Reply[msgspec.Raw] = Reply()
            await self._tell(InternalRequest("ping", {}, reply))
            with trio.move_on_after(timeout):
                try:
                    await reply.wait()
                except UpstreamTimeout:
                    pass  # request_timeout shorter than ping_timeout: no answer all the same
                except JsonRpcError:
                    continue  # an error answer is an answer
                else:
                    continue
            return f"did not answer ping within {timeout:g} s"
