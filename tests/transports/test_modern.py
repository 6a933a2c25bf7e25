"""The 2026-07-28 era toward a server over HTTP: probed first, translated both ways so the
upstream actor keeps speaking the initialize era (``transports/modern/``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
import trio
import trio.testing

from tests.transports.test_http import _next, connected
from watchgate.transports.modern import header_paths, header_value

INIT = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {"elicitation": {}},
            "clientInfo": {"name": "watchgate", "version": "9"},
        },
    }
).encode()
TOOLS = [
    {
        "name": "search",
        "inputSchema": {
            "type": "object",
            "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
        },
    },
    {
        "name": "bad",
        "inputSchema": {
            "type": "object",
            "properties": {"ratio": {"type": "number", "x-mcp-header": "Ratio"}},
        },
    },
]


def _answer(body: dict[str, Any], result: dict[str, Any], status: int = 200) -> httpx2.Response:
    return httpx2.Response(status, json={"jsonrpc": "2.0", "id": body["id"], "result": result})


class ModernServer:
    """A stateless server: every POST stands alone and must carry the era's _meta and headers."""

    def __init__(self, capabilities: dict[str, Any] | None = None) -> None:
        self.posts: list[tuple[httpx2.Headers, dict[str, Any]]] = []
        self.refused_once = False
        self.capabilities = capabilities if capabilities is not None else {"tools": {}}

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        if request.method != "POST":
            return httpx2.Response(405)
        body = json.loads(request.content)
        self.posts.append((request.headers, body))
        meta = body.get("params", {}).get("_meta", {})
        assert meta.get("io.modelcontextprotocol/protocolVersion") == request.headers["mcp-protocol-version"]
        method = body.get("method")
        if method == "server/discover":
            if not self.refused_once:  # the first try is refused naming what it speaks: retried
                self.refused_once = True
                error = {"code": -32022, "message": "Unsupported", "data": {"supported": ["2026-07-28"]}}
                return httpx2.Response(400, json={"jsonrpc": "2.0", "id": body["id"], "error": error})
            info = {"io.modelcontextprotocol/serverInfo": {"name": "modern", "version": "1"}}
            return _answer(
                body, {"supportedVersions": ["2026-07-28"], "capabilities": self.capabilities, "_meta": info}
            )
        if method == "tools/list":
            return _answer(body, {"resultType": "complete", "tools": TOOLS})
        if method == "tools/call":
            params = body["params"]
            if "requestState" not in params:
                ask = {"method": "elicitation/create", "params": {"message": "who?", "requestedSchema": {}}}
                return _answer(
                    body,
                    {"resultType": "input_required", "inputRequests": {"who": ask}, "requestState": "s=1"},
                )
            return _answer(
                body, {"resultType": "complete", "content": [{"type": "text", "text": json.dumps(params)}]}
            )
        return httpx2.Response(
            404, json={"jsonrpc": "2.0", "id": body.get("id"), "error": {"code": -32601, "message": "no"}}
        )


async def _send(connection: Any, message: dict[str, Any]) -> None:
    await connection.send([json.dumps(message).encode() + b"\n"])


async def test_a_modern_server_is_spoken_to_in_its_era_behind_an_initialize_answer() -> None:
    server = ModernServer()
    async with connected(server) as connection:
        await connection.send([INIT + b"\n"])
        initialized = await _next(connection)
        assert initialized["id"] == 0
        assert initialized["result"]["protocolVersion"] == "2026-07-28"
        assert initialized["result"]["serverInfo"] == {"name": "modern", "version": "1"}
        await _send(connection, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        await _send(
            connection, {"jsonrpc": "2.0", "id": 1, "method": "logging/setLevel", "params": {"level": "info"}}
        )
        assert await _next(connection) == {"jsonrpc": "2.0", "id": 1, "result": {}}  # no such method there
        await _send(connection, {"jsonrpc": "2.0", "id": 2, "method": "ping"})
        assert (await _next(connection))["id"] == 2  # the liveness probe reached the server
        await _send(connection, {"jsonrpc": "2.0", "id": 3, "method": "tools/list"})
        listed = await _next(connection)
        assert [tool["name"] for tool in listed["result"]["tools"]] == ["search"]  # "bad" broke the rules
        call = {"name": "search", "arguments": {"region": "eu-west 1 ", "q": "x"}}
        await _send(connection, {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": call})
        ask = await _next(connection)  # the server's input request, as the clients know it
        assert ask["method"] == "elicitation/create" and ask["params"]["message"] == "who?"
        await _send(
            connection,
            {"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "accept", "content": {"n": 1}}},
        )
        final = await _next(connection)
    assert final["id"] == 4  # one call, one answer, under the actor's own id
    retried = json.loads(final["result"]["content"][0]["text"])
    assert retried["requestState"] == "s=1"  # echoed, untouched
    assert retried["inputResponses"] == {"who": {"action": "accept", "content": {"n": 1}}}
    methods = [body["method"] for _, body in server.posts]
    assert methods == [
        "server/discover",
        "server/discover",
        "server/discover",
        "tools/list",
        "tools/call",
        "tools/call",
    ]
    headers, body = server.posts[4]
    assert headers["mcp-method"] == "tools/call" and headers["mcp-name"] == "search"
    assert headers["mcp-param-region"] == "=?base64?ZXUtd2VzdCAxIA==?="  # trailing space: base64
    assert body["params"]["_meta"]["io.modelcontextprotocol/clientInfo"] == {
        "name": "watchgate",
        "version": "9",
    }
    assert body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] == {"elicitation": {}}
    assert server.posts[5][1]["id"] != server.posts[4][1]["id"]  # the retry is a new request


async def test_a_client_that_cannot_answer_the_input_gets_an_error_for_its_call() -> None:
    async with connected(ModernServer()) as connection:
        await connection.send([INIT + b"\n"])
        await _next(connection)
        await _send(
            connection, {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "search"}}
        )
        ask = await _next(connection)
        await _send(
            connection,
            {"jsonrpc": "2.0", "id": ask["id"], "error": {"code": -32601, "message": "no elicitation"}},
        )
        refused = await _next(connection)
    assert refused["id"] == 7
    assert (
        refused["error"]["message"]
        == "the client could not give the input the server asked for: no elicitation"
    )


async def test_a_modern_clients_call_gets_the_servers_input_required_untouched() -> None:
    server = ModernServer()
    async with connected(server) as connection:
        await connection.send([INIT + b"\n"])
        await _next(connection)
        declared = {"elicitation": {"form": {}}}
        connection.relay_input(8, declared)  # the upstream actor: this request's client answers itself
        call = {"name": "search", "arguments": {}}
        await _send(connection, {"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": call})
        asked = await _next(connection)
        assert asked["id"] == 8  # the result itself, not a question of the gateway's
        assert asked["result"]["resultType"] == "input_required"
        assert asked["result"]["requestState"] == "s=1"
        assert asked["result"]["inputRequests"]["who"]["method"] == "elicitation/create"

        retry = {**call, "inputResponses": {"who": {"action": "decline"}}, "requestState": "s=1"}
        connection.relay_input(9, declared)
        await _send(connection, {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": retry})
        final = await _next(connection)
    assert final["id"] == 9
    echoed = json.loads(final["result"]["content"][0]["text"])
    assert echoed["requestState"] == "s=1" and echoed["inputResponses"] == {"who": {"action": "decline"}}
    first, second = (body for _, body in server.posts if body["method"] == "tools/call")
    for body in (first, second):  # the server hears what the answering client can do
        assert body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] == declared


async def test_closing_a_calls_stream_is_how_it_is_cancelled(autojump_clock: trio.testing.MockClock) -> None:
    closed = trio.Event()
    server = ModernServer()

    async def endless() -> AsyncIterator[bytes]:
        try:
            yield b": working\n\n"
            await trio.sleep_forever()
        finally:
            closed.set()

    def handler(request: httpx2.Request) -> httpx2.Response:
        if json.loads(request.content).get("method") == "tools/call":
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=endless())
        return server(request)

    async with connected(handler) as connection:
        await connection.send([INIT + b"\n"])
        await _next(connection)
        await _send(
            connection, {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "search"}}
        )
        await trio.testing.wait_all_tasks_blocked()
        await _send(
            connection, {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}}
        )
        with trio.fail_after(5):
            await closed.wait()
    assert "notifications/cancelled" not in [
        body["method"] for _, body in server.posts
    ]  # not sent in this era


SUBSCRIBE = {"jsonrpc": "2.0", "id": 2, "method": "resources/subscribe", "params": {"uri": "file:///a"}}


def _event(message: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(message).encode() + b"\n\n"


async def test_list_changes_and_resource_updates_come_on_one_listen_stream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """No GET stream and no resources/subscribe in this era: one subscriptions/listen request
    carries both, its filter following the gateway's subscriptions; logging/setLevel becomes the
    per-request logLevel."""
    server = ModernServer({"tools": {"listChanged": True}, "resources": {"subscribe": True}})
    listens: list[dict[str, Any]] = []
    closed: list[dict[str, Any]] = []
    push, pushed = trio.open_memory_channel[bytes](10)

    async def stream(wanted: dict[str, Any], request_id: str) -> AsyncIterator[bytes]:
        try:
            meta = {"io.modelcontextprotocol/subscriptionId": request_id}
            ack = {"_meta": meta, "notifications": wanted}
            yield _event(
                {"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged", "params": ack}
            )
            async for event in pushed:
                yield event
        finally:
            closed.append(wanted)

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        if body.get("method") == "subscriptions/listen":
            assert request.headers["mcp-method"] == "subscriptions/listen"
            listens.append(body["params"]["notifications"])
            events = stream(body["params"]["notifications"], body["id"])
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=events)
        return server(request)

    async with connected(handler) as connection:
        await connection.send([INIT + b"\n"])
        await _next(connection)
        await _send(
            connection,
            {"jsonrpc": "2.0", "id": 1, "method": "logging/setLevel", "params": {"level": "debug"}},
        )
        assert await _next(connection) == {"jsonrpc": "2.0", "id": 1, "result": {}}
        assert listens == []  # not before the handshake is over
        await _send(connection, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        await trio.testing.wait_all_tasks_blocked()
        assert listens == [{"toolsListChanged": True}]  # what the server offers

        changed = {"_meta": {"io.modelcontextprotocol/subscriptionId": "x"}}
        await push.send(
            _event({"jsonrpc": "2.0", "method": "notifications/tools/list_changed", "params": changed})
        )
        assert await _next(connection) == {
            "jsonrpc": "2.0",
            "method": "notifications/tools/list_changed",
            "params": {},
        }  # as on the GET stream of the older era: the acknowledgment and the stream's id stay here

        await _send(connection, SUBSCRIBE)
        assert await _next(connection) == {"jsonrpc": "2.0", "id": 2, "result": {}}
        await trio.testing.wait_all_tasks_blocked()
        assert listens[-1] == {"toolsListChanged": True, "resourceSubscriptions": ["file:///a"]}
        assert closed == [{"toolsListChanged": True}]  # the old stream closed: that subscription ended
        updated = {"uri": "file:///a", "_meta": {"io.modelcontextprotocol/subscriptionId": "y"}}
        await push.send(
            _event({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": updated})
        )
        assert (await _next(connection))["params"] == {"uri": "file:///a"}

        await _send(connection, {"jsonrpc": "2.0", "id": 3, "method": "tools/list"})
        await _next(connection)
    _, listed = server.posts[-1]
    assert listed["params"]["_meta"]["io.modelcontextprotocol/logLevel"] == "debug"


async def test_a_listen_stream_that_ends_or_drops_is_reopened_until_the_server_refuses_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = ModernServer({"prompts": {"listChanged": True}})
    listens: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        if body.get("method") != "subscriptions/listen":
            return server(request)
        listens.append(body["id"])
        if len(listens) == 1:  # the server ends it gracefully (its answer to the listen request)
            closure = {"jsonrpc": "2.0", "id": body["id"], "result": {"resultType": "complete"}}
            return httpx2.Response(
                200, headers={"content-type": "text/event-stream"}, content=_event(closure)
            )
        if len(listens) == 2:
            raise httpx2.ConnectError("connection refused")
        return httpx2.Response(
            404, json={"jsonrpc": "2.0", "id": body["id"], "error": {"code": -32601, "message": "no"}}
        )

    async with connected(handler) as connection:
        await connection.send([INIT + b"\n"])
        await _next(connection)
        await _send(connection, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        await trio.sleep(60)
    assert len(listens) == 3 and len(set(listens)) == 3  # each one a new request; none after the 404


async def test_a_server_without_subscriptions_refuses_them_and_gets_no_listen_stream() -> None:
    listens = []
    server = ModernServer()

    def handler(request: httpx2.Request) -> httpx2.Response:
        if json.loads(request.content).get("method") == "subscriptions/listen":
            listens.append(request)
        return server(request)

    async with connected(handler) as connection:
        await connection.send([INIT + b"\n"])
        await _next(connection)
        await _send(connection, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        await _send(connection, SUBSCRIBE)
        refused = await _next(connection)
    assert refused["error"]["code"] == -32601
    assert "offers no resource subscriptions" in refused["error"]["message"]
    assert listens == []  # it offers no list changes either: nothing to listen for


@pytest.mark.parametrize(
    ("value", "header"),
    [
        ("us-west1", "us-west1"),
        (42, "42"),
        (False, "false"),
        ("Hello, 世界", "=?base64?SGVsbG8sIOS4lueVjA==?="),
        (" padded ", "=?base64?IHBhZGRlZCA=?="),
        ("line1\nline2", "=?base64?bGluZTEKbGluZTI=?="),
        ("=?base64?literal?=", "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="),
    ],
)
def test_header_values_are_plain_when_safe_and_base64_otherwise(value: Any, header: str) -> None:
    assert header_value(value) == header


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"properties": {"a": {"type": "string", "x-mcp-header": ""}}}, "is empty"),
        (
            {"properties": {"a": {"type": "string", "x-mcp-header": "Has Space"}}},
            "is not a valid header name",
        ),
        (
            {
                "properties": {
                    "a": {"type": "string", "x-mcp-header": "X"},
                    "b": {"type": "string", "x-mcp-header": "x"},
                }
            },
            "is not unique",
        ),
        ({"properties": {"a": {"type": "object", "x-mcp-header": "A"}}}, "not a string, integer or boolean"),
        (
            {"properties": {"a": {"type": "array", "items": {"type": "string", "x-mcp-header": "A"}}}},
            "not reachable",
        ),
        ({"anyOf": [{"properties": {"a": {"type": "string", "x-mcp-header": "A"}}}]}, "not reachable"),
    ],
)
def test_header_annotations_that_break_the_rules_are_refused(schema: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        header_paths({"type": "object", **schema})


def test_nested_properties_are_reachable() -> None:
    schema = {
        "type": "object",
        "properties": {"o": {"type": "object", "properties": {"r": {"type": "string", "x-mcp-header": "R"}}}},
    }
    assert header_paths(schema) == {"R": ("o", "r")}


async def test_protocol_legacy_never_probes() -> None:
    from tests.transports.test_http import _config as http_config
    from watchgate.config import parse_config
    from watchgate.transports.http import HttpConnection

    seen: list[str] = []

    def server(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        seen.append(body["method"])
        return _answer(body, {"protocolVersion": "2025-11-25", "capabilities": {}})

    text = "proxy:\n  upstream:\n    transport: http\n    url: http://127.0.0.1:9/mcp\n    protocol: legacy\n"
    assert http_config().protocol == "auto"
    async with (
        httpx2.AsyncClient(transport=httpx2.MockTransport(server)) as client,
        trio.open_nursery() as nursery,
    ):
        connection = HttpConnection(parse_config(text).proxy.upstreams[0], client, nursery)
        await connection.send([INIT + b"\n"])
        assert (await _next(connection))["result"]["protocolVersion"] == "2025-11-25"
        nursery.cancel_scope.cancel()
    assert seen == ["initialize"]
