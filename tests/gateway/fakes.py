"""In-memory upstream MCP servers and an in-process gateway, so tests run under MockClock.

A ``FakeServer`` speaks newline-delimited JSON-RPC over memory streams through the same
``Connector`` seam the stdio transport uses; the gateway cannot tell it from a process.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio
import trio.testing
import yaml

from watchgate.config import UpstreamConfig, parse_config
from watchgate.gateway.tree import Gateway
from watchgate.protocol.identity import ANONYMOUS, Principal
from watchgate.transports.facts import ConnectionFacts, Ending
from watchgate.wire.framing import LineReader
from watchgate.wire.lines import LineChannel

ToolFn = Callable[["FakeSession", dict[str, Any]], Awaitable[Any]]
_pids = itertools.count(1000)


class FakeSession:
    """One incarnation of a fake server: what it received, and a way to talk back."""

    def __init__(self, server: FakeServer, send: trio.abc.SendStream) -> None:
        self.server = server
        self.pid = next(_pids)
        self._send = send
        self.received: list[dict[str, Any]] = []
        self.exit_code: int | None = None
        self.stderr_tail: list[str] = []
        self.closed = trio.Event()
        self.relayed: dict[int | str, dict[str, Any]] = {}  # request id -> what relay_input was told
        self.legacy_clients: set[int | str] = set()  # request ids legacy_client was told
        self._answers: dict[Any, trio.MemorySendChannel[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._send_lock = trio.Lock()  # answers run as concurrent tasks, like a real server's

    async def send(self, msg: dict[str, Any]) -> None:
        async with self._send_lock:
            await self._send.send_all(json.dumps(msg).encode() + b"\n")

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        await self.send(msg)

    async def send_raw(self, data: bytes) -> None:
        """Bytes exactly as given: garbage, or a message the helpers would not build."""
        await self._send.send_all(data)

    def requests(self, method: str) -> list[dict[str, Any]]:
        """The requests (and notifications) of ``method`` this session received, in order."""
        return [m for m in self.received if m.get("method") == method]

    async def request_client(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """A server-to-client request (sampling, elicitation, roots); returns the whole response."""
        request_id = f"srv-{next(self._ids)}"
        send, receive = trio.open_memory_channel[dict[str, Any]](1)
        self._answers[request_id] = send
        await self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        return await receive.receive()

    def crash(self, code: int = 1, last_words: str = "") -> None:
        if last_words:
            self.stderr_tail.append(last_words)
        self.exit_code = code
        self.closed.set()

    def methods(self) -> list[str]:
        return [m.get("method", "<response>") for m in self.received]


class FakeServer:
    """A scriptable MCP server. Tools are async functions returning a result dict."""

    def __init__(
        self,
        name: str,
        *,
        tools: dict[str, ToolFn] | None = None,
        capabilities: dict[str, Any] | None = None,
        page_size: int = 0,
        prompts: list[str] = (),  # type: ignore[assignment]
        resources: list[str] = (),  # type: ignore[assignment]
        on_initialize: Callable[[FakeSession], Awaitable[None]] | None = None,
        protocol_version: str = "2025-11-25",
        instructions: str | None = None,
        templates: list[str] | None = None,
        fail_methods: tuple[str, ...] = (),
        silent_methods: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.tools = dict(tools or {})
        self.capabilities = capabilities if capabilities is not None else {"tools": {"listChanged": True}}
        self.page_size = page_size
        self.prompts = list(prompts)
        self.resources = list(resources)
        self.on_initialize = on_initialize
        self.protocol_version = protocol_version
        self.instructions = instructions
        self.templates = ["tpl://{id}"] if templates is None else list(templates)
        self.fail_methods = set(fail_methods)  # answered with a -32603 error instead of a result
        self.silent_methods = set(silent_methods)  # never answered: a hung server
        self.sessions: list[FakeSession] = []
        self.started = trio.Event()
        self.fail_start: str | Exception | None = None  # a reason (UpstreamStartError) or the error

    @property
    def session(self) -> FakeSession:
        return self.sessions[-1]

    def _page(self, key: str, items: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
        if not self.page_size:
            return {key: items}
        start = int(params.get("cursor") or 0)
        page: dict[str, Any] = {key: items[start : start + self.page_size]}
        if start + self.page_size < len(items):
            page["nextCursor"] = str(start + self.page_size)
        return page

    async def serve(self, session: FakeSession, receive: trio.abc.ReceiveStream) -> None:
        async with trio.open_nursery() as nursery:
            async for line in LineReader(receive):
                msg = json.loads(line)
                session.received.append(msg)
                if "method" not in msg:
                    answer = session._answers.pop(msg.get("id"), None)
                    if answer is not None:
                        await answer.send(msg)
                    continue
                if "id" in msg:
                    nursery.start_soon(self._answer, session, msg)
            nursery.cancel_scope.cancel()

    async def _answer(self, session: FakeSession, msg: dict[str, Any]) -> None:
        method, params = msg["method"], msg.get("params") or {}
        if method in self.silent_methods:
            return
        if method in self.fail_methods:
            error = {"code": -32603, "message": f"{method} is broken"}
            await session.send({"jsonrpc": "2.0", "id": msg["id"], "error": error})
            return
        try:
            result = await self._result(session, method, params)
        except FakeError as exc:  # a tool's own error answer
            await session.send({"jsonrpc": "2.0", "id": msg["id"], "error": exc.error})
            return
        except LookupError as exc:
            await session.send(
                {"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32602, "message": str(exc)}}
            )
            return
        if result is not None:
            await session.send({"jsonrpc": "2.0", "id": msg["id"], "result": result})

    async def _result(self, session: FakeSession, method: str, params: dict[str, Any]) -> Any:
        if method == "initialize":
            if self.on_initialize is not None:
                await self.on_initialize(session)
            result = {
                "protocolVersion": self.protocol_version,
                "capabilities": self.capabilities,
                "serverInfo": {"name": self.name, "version": "0"},
            }
            if self.instructions:
                result["instructions"] = self.instructions
            return result
        if method == "tools/list":
            tools = [{"name": n, "inputSchema": {"type": "object"}} for n in self.tools]
            return self._page("tools", tools, params)
        if method == "prompts/list":
            return self._page("prompts", [{"name": n} for n in self.prompts], params)
        if method == "resources/list":
            return self._page("resources", [{"uri": u, "name": u} for u in self.resources], params)
        if method == "resources/templates/list":
            return {"resourceTemplates": [{"uriTemplate": t, "name": t} for t in self.templates]}
        if method == "resources/read":
            return {"contents": [{"uri": params["uri"], "text": f"content of {params['uri']}"}]}
        if method == "prompts/get":
            return {"messages": [{"role": "user", "content": {"type": "text", "text": params["name"]}}]}
        if method in ("ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"):
            return {}
        if method == "completion/complete":
            return {"completion": {"values": [json.dumps(params["ref"])]}}
        if method == "tools/call":
            tool = self.tools.get(params["name"])
            if tool is None:
                raise LookupError(f"unknown tool {params['name']}")
            return await tool(session, params.get("arguments") or {})
        raise LookupError(f"method not found: {method}")

    @asynccontextmanager
    async def connect(self, config: UpstreamConfig) -> AsyncIterator[FakeConnection]:
        if self.fail_start is not None:
            from watchgate.errors import UpstreamStartError

            if isinstance(self.fail_start, Exception):
                raise self.fail_start
            raise UpstreamStartError(self.fail_start)
        to_server_send, to_server_receive = trio.testing.memory_stream_one_way_pair()
        to_gateway_send, to_gateway_receive = trio.testing.memory_stream_one_way_pair()
        session = FakeSession(self, to_gateway_send)
        self.sessions.append(session)
        self.started.set()
        self.started = trio.Event()
        async with trio.open_nursery() as nursery:

            async def run_server() -> None:
                # like a process, the server does not die of the gateway's cancellation: it reads
                # what it was sent until its stdin closes (or it crashes), then exits
                with trio.CancelScope(shield=True):
                    with trio.CancelScope() as scope:
                        nursery.start_soon(_close_when, session, scope)
                        await self.serve(session, to_server_receive)
                    if session.exit_code is None:
                        session.exit_code = 0
                    await to_gateway_send.aclose()
                    session.closed.set()

            nursery.start_soon(run_server)
            try:
                yield FakeConnection(session, to_server_send, to_gateway_receive)
            finally:
                await to_server_send.aclose()
                with trio.move_on_after(config.shutdown_timeout):
                    await session.closed.wait()
                nursery.cancel_scope.cancel()


async def _close_when(session: FakeSession, scope: trio.CancelScope) -> None:
    await session.closed.wait()
    scope.cancel()


class FakeConnection:
    """The mock transport: a sibling of the stdio one, over memory streams (no fast path)."""

    def __init__(
        self, session: FakeSession, stdin: trio.abc.SendStream, stdout: trio.abc.ReceiveStream
    ) -> None:
        self._session = session
        self._channel = channel = LineChannel(stdin, stdout)
        self.receive = channel.receive

    @property
    def fast_path(self) -> LineChannel:
        return self._channel  # memory streams are never ready: everything goes through send

    async def send(self, lines: Sequence[bytes | bytearray]) -> None:
        await self._channel.send(b"".join(lines))

    @property
    def pid(self) -> int | None:
        return self._session.pid

    @property
    def stderr_tail(self) -> list[str]:
        return self._session.stderr_tail

    def relay_input(self, request_id: int | str, capabilities: dict[str, Any]) -> None:
        self._session.relayed[request_id] = capabilities

    def legacy_client(self, request_id: int | str) -> None:
        self._session.legacy_clients.add(request_id)

    def describe(self) -> ConnectionFacts:
        return ConnectionFacts()

    async def drained(self) -> None:
        return

    async def pump_side(self, on_burst: object) -> None:
        return

    async def pump_stderr(self, on_line: Callable[[str], None] | None = None) -> None:
        await self._session.closed.wait()

    async def wait(self) -> int | None:
        await self._session.closed.wait()
        return self._session.exit_code

    def ending(self) -> Ending:
        code = self._session.exit_code
        reason = f"exited with code {code}"
        return Ending(
            "exited", f"{reason}; stderr: {self.stderr_tail[-1]}" if self.stderr_tail else reason, code
        )


def fake_connector(*servers: FakeServer) -> Callable[[UpstreamConfig], Any]:
    by_name = {server.name: server for server in servers}
    return lambda config: by_name[config.name].connect(config)


def make_config(*names: str, **upstream_keys: Any) -> Any:
    """A GatewayConfig for fake upstreams (the command is never run)."""
    startup_wait = upstream_keys.pop("startup_wait", 15)
    single = upstream_keys.pop("single", False)  # leave the one upstream unnamed ("default")
    upstreams = [{"name": name, "command": ["fake"], **upstream_keys} for name in names]
    if len(names) == 1 and single:
        upstreams[0].pop("name")
    text = yaml.safe_dump({"proxy": {"startup_wait": startup_wait, "upstreams": upstreams}})
    return parse_config(text)


class Client:
    """The client end of an in-process gateway session: raw JSON-RPC, as a test wants to see it."""

    def __init__(self, send: trio.abc.SendStream, receive: trio.abc.ReceiveStream) -> None:
        self._send = send
        self._receive = receive
        self._ids = itertools.count(1)
        self.responses: dict[Any, dict[str, Any]] = {}
        self.notifications: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []  # everything, in the order it arrived
        self._arrived = trio.Event()

    async def pump(self) -> None:
        async for line in LineReader(self._receive):
            msg = json.loads(line)
            self.received.append(msg)
            if "method" not in msg:
                self.responses[msg.get("id")] = msg
            elif "id" in msg:
                self.requests.append(msg)
            else:
                self.notifications.append(msg)
            self._arrived.set()
            self._arrived = trio.Event()

    async def send_raw(self, data: bytes) -> None:
        await self._send.send_all(data)

    async def send(self, msg: dict[str, Any]) -> None:
        await self._send.send_all(json.dumps(msg).encode() + b"\n")

    async def start(self, method: str, params: dict[str, Any] | None = None, request_id: Any = None) -> Any:
        request_id = next(self._ids) if request_id is None else request_id
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            msg["params"] = params
        await self.send(msg)
        return request_id

    async def response(self, request_id: Any) -> dict[str, Any]:
        while request_id not in self.responses:
            await self._arrived.wait()
        return self.responses.pop(request_id)

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.response(await self.start(method, params))

    async def result(self, method: str, params: dict[str, Any] | None = None) -> Any:
        response = await self.request(method, params)
        assert "result" in response, response
        return response["result"]

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        await self.send(msg)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Poll: the predicate may watch the servers or the gateway, not only what the client got.

        Under MockClock the 10 ms steps cost no real time.
        """
        while not predicate():
            await trio.sleep(0.01)

    async def initialize(
        self, version: str = "2025-11-25", capabilities: dict[str, Any] | None = None
    ) -> Any:
        result = await self.result(
            "initialize",
            {
                "protocolVersion": version,
                "capabilities": capabilities or {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        )
        await self.notify("notifications/initialized")
        return result

    def notified(self, method: str) -> list[dict[str, Any]]:
        return [n for n in self.notifications if n["method"] == method]

    async def next_request(self, method: str) -> dict[str, Any]:
        """Wait for a server-to-client request of ``method`` and take it off the list."""
        while True:
            for request in self.requests:
                if request["method"] == method:
                    self.requests.remove(request)
                    return request
            await self._arrived.wait()

    async def answer(self, request_id: Any, result: Any) -> None:
        await self.send({"jsonrpc": "2.0", "id": request_id, "result": result})

    async def close(self) -> None:
        await self._send.aclose()


@asynccontextmanager
async def running_gateway(
    config: Any, *servers: FakeServer, deadline: float = 600, **gateway_options: Any
) -> AsyncIterator[tuple[Gateway, Client]]:
    """A whole gateway in this process over memory streams, with fake upstreams."""
    gateway = Gateway(config, connector=fake_connector(*servers), **gateway_options)
    client_to_gw_send, client_to_gw_receive = trio.testing.memory_stream_one_way_pair()
    gw_to_client_send, gw_to_client_receive = trio.testing.memory_stream_one_way_pair()
    client = Client(client_to_gw_send, gw_to_client_receive)
    # a deadline in (mock) time turns any hang into a failure with a traceback
    with trio.fail_after(deadline):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(gateway.serve_stream, client_to_gw_receive, gw_to_client_send)
            nursery.start_soon(client.pump)
            yield gateway, client
            nursery.cancel_scope.cancel()


class FakeError(Exception):
    """Raised by a fake tool: its call is answered with this JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.error: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            self.error["data"] = data


def text(content: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": content}]}


async def echo(session: FakeSession, args: dict[str, Any]) -> Any:
    return text(str(args.get("text", "")))


async def hang(session: FakeSession, args: dict[str, Any]) -> Any:
    await trio.sleep_forever()


async def crash(session: FakeSession, args: dict[str, Any]) -> Any:
    session.crash(3, "boom: out of memory")
    await trio.sleep_forever()


@asynccontextmanager
async def running_daemon(
    config: Any, *servers: FakeServer, deadline: float = 600, **gateway_options: Any
) -> AsyncIterator[tuple[Gateway, Callable[..., Awaitable[Client]]]]:
    """The gateway as the daemon runs it: the tree on its own, clients attaching and leaving.

    Yields the gateway and ``attach()``, which connects one more client and returns it.
    """
    gateway = Gateway(config, connector=fake_connector(*servers), **gateway_options)
    with trio.fail_after(deadline):
        async with trio.open_nursery() as nursery:
            await nursery.start(gateway.run)

            async def attach(
                *, reading: bool = True, profile: str | None = None, principal: Principal = ANONYMOUS
            ) -> Client:
                """``reading=False``: a client that never reads what it is sent (a lockstep
                stream: the gateway's writes to it block, as on a pipe nobody drains);
                ``profile``: the one it attaches with; ``principal``: who it is."""
                to_gw_send, to_gw_receive = trio.testing.memory_stream_one_way_pair()
                if reading:
                    to_client_send, to_client_receive = trio.testing.memory_stream_one_way_pair()
                else:
                    to_client_send, to_client_receive = trio.testing.lockstep_stream_pair()
                client = Client(to_gw_send, to_client_receive)
                before = len(gateway.sessions())
                nursery.start_soon(
                    partial(
                        gateway.attach_client,
                        to_gw_receive,
                        to_client_send,
                        profile=profile,
                        principal=principal,
                    )
                )
                if reading:
                    nursery.start_soon(client.pump)
                while len(gateway.sessions()) == before:
                    await trio.sleep(0.01)
                return client

            yield gateway, attach
            nursery.cancel_scope.cancel()
