"""The client under test in the conformance suite's client scenarios: Watchgate's upstream side.

``conformance client --command "python client_driver.py" --scenario NAME`` starts a mock MCP
server for the scenario and runs this with its URL. The driver writes a one-server config
(``transport: http`` to that URL), starts the real ``watchgate run`` on it and, as an MCP client
of the gateway (the official SDK over stdio), does what the scenario expects a client to do.
Everything the mock server sees therefore comes from Watchgate's Streamable HTTP transport:
the handshake, the headers, the session, the stream resumption.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio
import yaml
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client

WATCHGATE = str(Path(sys.executable).with_name("watchgate"))


async def _scenario(session: ClientSession, scenario: str) -> None:
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
    elif tools:
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


async def main(url: str) -> None:
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "watchgate.yaml"
        upstream: dict[str, Any] = {"name": "conformance", "transport": "http", "url": url}
        config.write_text(yaml.safe_dump({"proxy": {"upstreams": [upstream], "startup_wait": 60}}))
        params = StdioServerParameters(
            command=WATCHGATE, args=["run", "-c", str(config)], env=dict(os.environ)
        )
        async with (
            stdio_client(params, errlog=sys.stderr) as (read, write),
            ClientSession(read, write, elicitation_callback=_accept_with_defaults) as session,
        ):
            with trio.fail_after(75):  # the suite waits 90 s (the test says so): fail first, saying where
                await session.initialize()
                await _scenario(session, scenario)


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
