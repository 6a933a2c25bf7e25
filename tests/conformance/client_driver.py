"""The client under test in the conformance suite's client scenarios: Watchgate's upstream side.

``conformance client --command "python client_driver.py" --scenario NAME`` starts a mock MCP
server for the scenario and runs this with its URL. The driver writes a one-server config
(``transport: http`` to that URL), runs the gateway on it as ``watchgate run`` does (in this
process, its byte stream bridged to the official SDK's client session: one Python start per
scenario instead of three, the suite's largest cost) and, as an MCP client of the gateway, does
what the scenario expects a client to do. A login is ``watchgate auth login``'s own code, with
an HTTP client for the browser. Everything the mock server sees therefore comes from
Watchgate's Streamable HTTP transport: the handshake, the headers, the session, the stream
resumption, the OAuth flows.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import trio
import yaml
from mcp import Client, ClientSession, MCPError, types
from mcp.shared.message import SessionMessage

from watchgate.cli.auth import _login_async
from watchgate.config import load_config
from watchgate.gateway.tree import Gateway


async def _scenario(session: Any, scenario: str) -> None:
    tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    if "add_numbers" in tools:
        await session.call_tool("add_numbers", {"a": 5, "b": 3})
    elif scenario == "sse-retry":
        await session.call_tool("test_reconnection", {})
    elif "json_schema_echo" in tools:  # what the gateway passed on of the focal tool's schema
        focal = next(tool for name, tool in tools.items() if name != "json_schema_echo")
        await session.call_tool("json_schema_echo", {"schema": focal.input_schema})
    elif "valid_tool" in tools:  # the one the invalid ones must not hide (SEP-2243)
        await session.call_tool("valid_tool", _sample_arguments(tools["valid_tool"].input_schema))
    elif "test_custom_headers" in tools:  # values that exercise every encoding rule (SEP-2243)
        await session.call_tool(
            "test_custom_headers", _sample_arguments(tools["test_custom_headers"].input_schema)
        )
        if "test_custom_headers_null" in tools:
            schema = tools["test_custom_headers_null"].input_schema
            await session.call_tool("test_custom_headers_null", dict.fromkeys(schema.get("properties", {})))
    elif "test_mrtr_echo_state" in tools:  # the gateway answers the server's input rounds
        for name in (
            "test_mrtr_echo_state",
            "test_mrtr_unrelated",
            "test_mrtr_no_state",
            "test_mrtr_no_result_type",
        ):
            await session.call_tool(name, {})
    elif tools and scenario != "json-schema-ref-no-deref":  # that one asks for the list only
        with contextlib.suppress(MCPError):  # a tool the scenario's server does not serve
            await session.call_tool(sorted(tools)[0], {})


_SAMPLE_STRINGS = {
    "NonAscii": "Hello, 世界",
    "Whitespace": " padded ",
    "LeadingSpace": " leading",
    "TrailingSpace": "trailing ",
    "InternalSpace": "internal space",
    "ControlChar": "bell\x07",
    "CrLf": "line1\r\nline2",
    "Tab": "tab\there",
    "EmptyVal": "",
    "Method": "GET",
}


def _sample_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """A value for every property, chosen to need each header encoding (plain, base64)."""
    arguments: dict[str, Any] = {}
    for name, spec in schema.get("properties", {}).items():
        header = spec.get("x-mcp-header", "")
        kind = spec.get("type")
        if kind == "integer":
            arguments[name] = 42
        elif kind == "number":
            arguments[name] = 3.14
        elif kind == "boolean":
            arguments[name] = header == "Debug"
        else:
            arguments[name] = _SAMPLE_STRINGS.get(header, "us-west1")
    return arguments


async def _accept_with_defaults(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    """A user who accepts what is offered: every field's default (SEP-1034)."""
    schema = getattr(params, "requested_schema", None) or {}
    content = {
        name: field["default"] for name, field in schema.get("properties", {}).items() if "default" in field
    }
    return types.ElicitResult(action="accept", content=content)


async def _login(config: Path) -> None:
    """``watchgate auth login``, the browser being an HTTP client that follows the authorization
    URL (the suite's authorization server approves at once and redirects to the login's
    loopback listener)."""
    async with (
        trio.open_nursery() as nursery,
        httpx2.AsyncClient(follow_redirects=True, timeout=30) as browser,
    ):

        async def follow(url: str) -> None:
            with contextlib.suppress(httpx2.HTTPError):
                await browser.get(url)

        async def open_url(url: str) -> None:
            nursery.start_soon(follow, url)  # the redirect back is served once this returns

        (upstream,) = load_config(config).proxy.upstreams
        await _login_async(upstream, True, open_url=open_url)


@contextlib.asynccontextmanager
async def _gateway(config: Path) -> AsyncIterator[tuple[Any, Any]]:
    """The gateway on ``config``, as ``watchgate run`` serves it (audit off), and the SDK's
    streams to it: JSON lines both ways, as over stdio."""
    gateway = Gateway(load_config(config))
    ours, theirs = (
        trio.SocketStream(end) for end in trio.socket.socketpair()
    )  # not trio.testing: it loads pytest
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)

    async def outgoing() -> None:
        async with write_reader:
            async for message in write_reader:
                line = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                await ours.send_all(line.encode())

    async def incoming() -> None:
        rest = b""
        async with read_writer:
            while data := await ours.receive_some():
                *lines, rest = (rest + data).split(b"\n")
                for line in lines:
                    message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                    await read_writer.send(SessionMessage(message))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(gateway.serve_stream, theirs, theirs)
        nursery.start_soon(outgoing)
        nursery.start_soon(incoming)
        try:
            yield read_stream, write_stream
        finally:
            nursery.cancel_scope.cancel()


def _oauth(scenario: str) -> dict[str, Any] | None:
    """The ``auth:`` of an OAuth scenario: pre-registered credentials where the suite gives them."""
    if not scenario.startswith("auth/"):
        return None
    context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    # the client-ID metadata document the suite's fixtures know, as a user with one configures
    # it (used where the authorization server supports them, else the gateway registers itself)
    auth: dict[str, Any] = {
        "type": "oauth",
        "client_metadata_url": "https://conformance-test.local/client-metadata.json",
    }
    if context.get("client_id"):
        auth["client_id"] = context["client_id"]
    if context.get("client_secret"):
        secret = Path(tempfile.mkdtemp()) / "secret"
        secret.write_text(context["client_secret"])
        auth["client_secret_file"] = str(secret)
    return auth


class _LoggingIn:
    """The session, as a person uses it: a call refused for want of a login (a server asking
    for more scope) is followed by `watchgate auth login` and the same call again."""

    def __init__(self, session: ClientSession | Client, login: Any) -> None:
        self._session = session
        self._login = login

    async def list_tools(self) -> Any:
        return await self._session.list_tools()

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        try:
            return await self._session.call_tool(name, arguments)
        except MCPError as exc:
            if self._login is None or "auth login" not in str(exc):
                raise
        await self._login()
        for _ in range(250):  # the gateway reconnects the server with its backoff
            try:
                return await self._session.call_tool(name, arguments)
            except MCPError as exc:
                if "unavailable" not in str(exc):
                    raise
                await trio.sleep(0.2)
        raise RuntimeError("the server did not come back after the login")


async def main(url: str) -> None:
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "watchgate.yaml"
        upstream: dict[str, Any] = {"name": "conformance", "transport": "http", "url": url}
        os.environ["XDG_CONFIG_HOME"] = scratch  # the token file, this run's own
        auth = _oauth(scenario)
        if auth is not None:
            upstream["auth"] = auth
            # while the login is redone (a step-up), the server waits in needs-login, restarting
            # with its backoff; keep it short
            upstream.update(max_restarts=50, backoff={"max": 1.0})
        config.write_text(yaml.safe_dump({"proxy": {"upstreams": [upstream], "startup_wait": 60}}))
        if auth is not None:
            with trio.fail_after(60):
                await _login(config)
        login = (lambda: _login(config)) if auth is not None else None
        with trio.fail_after(75):  # the suite waits 90 s (the test says so): fail first, saying where
            if os.environ.get("WATCHGATE_DRIVER_ERA") == "2026-07-28":
                # a client of that era: the gateway speaks to the server in it (era transparency)
                async with Client(
                    _gateway(config), mode="2026-07-28", elicitation_callback=_accept_with_defaults
                ) as client:
                    await _scenario(_LoggingIn(client, login), scenario)
                return
            async with (
                _gateway(config) as (read, write),
                ClientSession(read, write, elicitation_callback=_accept_with_defaults) as session,
            ):
                await session.initialize()
                await _scenario(_LoggingIn(session, login), scenario)


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
