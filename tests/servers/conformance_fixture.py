"""The project's own conformance fixture: an MCP server on the official SDK (``MCPServer``) with
the tools, resources and prompts the conformance suite's server scenarios call (the suite's
``examples/servers/typescript/README.md`` lists them; contents follow its reference server).

    conformance_fixture.py stdio                 # behind Watchgate
    conformance_fixture.py http PORT             # directly, for the same scenarios
    conformance_fixture.py http PORT --only legacy|modern    # one era only (era_shapes.py)
    conformance_fixture.py stdio --only legacy|modern

Over HTTP it serves both eras on one endpoint, as the SDK does; ``--only`` makes it a server of
the older or of the newer era alone, the other two shapes a gateway meets.

The MRTR tools and prompt of the 2026-07-28 requirements (``test_input_required_result_*``) are
``conformance_mrtr.py``'s: they answer ``input_required`` only on a 2026-07-28 connection (over
HTTP), so behind Watchgate they work when the fixture is reached over HTTP, not over stdio.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

import anyio
import conformance_mrtr  # beside this file: the fixture runs as a script
from mcp import types
from mcp.server.mcpserver import Context, MCPServer

IMAGE = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
AUDIO = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="

server: MCPServer[Any] = MCPServer("watchgate-conformance-fixture", version="1.0.0")


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


# ----- tools ------------------------------------------------------------------------------------
@server.tool(description="Tests simple text content response")
def test_simple_text() -> list[types.ContentBlock]:
    return [types.TextContent(type="text", text="This is a simple text response for testing.")]


@server.tool(description="Tests image content response")
def test_image_content() -> list[types.ContentBlock]:
    return [types.ImageContent(type="image", data=IMAGE, mime_type="image/png")]


@server.tool(description="Tests audio content response")
def test_audio_content() -> list[types.ContentBlock]:
    return [types.AudioContent(type="audio", data=AUDIO, mime_type="audio/wav")]


def _embedded(uri: str, mime: str, text: str) -> types.EmbeddedResource:
    return types.EmbeddedResource(
        type="resource", resource=types.TextResourceContents(uri=uri, mime_type=mime, text=text)
    )


@server.tool(description="Tests embedded resource content response")
def test_embedded_resource() -> list[types.ContentBlock]:
    return [_embedded("test://embedded-resource", "text/plain", "This is an embedded resource content.")]


@server.tool(description="Tests response with multiple content types (text, image, resource)")
def test_multiple_content_types() -> list[types.ContentBlock]:
    return [
        types.TextContent(type="text", text="Multiple content types test:"),
        types.ImageContent(type="image", data=IMAGE, mime_type="image/png"),
        _embedded(
            "test://mixed-content-resource", "application/json", json.dumps({"test": "data", "value": 123})
        ),
    ]


@server.tool(description="Tests tool that emits log messages during execution")
async def test_tool_with_logging(ctx: Context) -> str:
    for step in ("Tool execution started", "Tool processing data", "Tool execution completed"):
        await ctx.info(step)
        await anyio.sleep(0.05)
    return "Tool with logging executed successfully"


@server.tool(description="Tests tool that reports progress notifications")
async def test_tool_with_progress(ctx: Context) -> str:
    for value in (0, 50, 100):
        await ctx.report_progress(value, 100, f"Completed step {value} of 100")
        await anyio.sleep(0.05)
    meta = ctx.request_context.meta
    token = getattr(meta, "progress_token", None) if meta is not None else None
    return str(token if token is not None else 0)


@server.tool(description="Waits until cancelled (or a minute), then says whether it was")
async def test_wait(ctx: Context) -> str:
    try:
        await anyio.sleep(60)
    except anyio.get_cancelled_exc_class():
        _cancelled.append(str(ctx.request_id))
        raise
    return "waited"


@server.tool(description="How many test_wait calls were cancelled")
def test_cancelled_count() -> str:
    return str(len(_cancelled))


@server.tool(description="Says test://watched-resource changed, to its subscribers of either era")
async def test_update_watched(ctx: Context) -> str:
    await ctx.notify_resource_updated("test://watched-resource")  # 2026-07-28 listeners
    if "test://watched-resource" in _subscribed:
        with contextlib.suppress(Exception):  # a 2026-07-28 request has no session to say it on
            await ctx.session.send_resource_updated("test://watched-resource")
    return "updated"


@server.tool(description="Tests error response handling")
def test_error_handling() -> str:
    raise RuntimeError("This tool intentionally returns an error for testing")


@server.tool(description="Tests server-initiated sampling (LLM completion request)")
async def test_sampling(prompt: str, ctx: Context) -> str:
    try:
        result = await ctx.session.create_message(
            [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))],
            max_tokens=100,
            related_request_id=ctx.request_id,
        )
    except Exception as exc:
        return f"Sampling not supported or error: {exc}"
    content = result.content
    text = getattr(content, "text", None) or "No response"
    return f"LLM response: {text}"


async def _elicit(ctx: Context, message: str, schema: dict[str, Any], label: str) -> str:
    try:
        result = await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)  # type: ignore[arg-type]
    except Exception as exc:
        return f"Elicitation not supported or error: {exc}"
    return (
        f"{label}: action={result.action}, content={json.dumps(result.content or {}, separators=(',', ':'))}"
    )


@server.tool(description="Tests server-initiated elicitation (user input request)")
async def test_elicitation(message: str, ctx: Context) -> str:
    schema = {
        "type": "object",
        "properties": {"response": {"type": "string", "description": "User's response"}},
        "required": ["response"],
    }
    return await _elicit(ctx, message, schema, "User response")


@server.tool(description="Tests elicitation with default values per SEP-1034")
async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "User name", "default": "John Doe"},
            "age": {"type": "integer", "description": "User age", "default": 30},
            "score": {"type": "number", "description": "User score", "default": 95.5},
            "status": {
                "type": "string",
                "description": "User status",
                "enum": ["active", "inactive", "pending"],
                "default": "active",
            },
            "verified": {"type": "boolean", "description": "Verification status", "default": True},
        },
        "required": [],
    }
    return await _elicit(
        ctx, "Please review and update the form fields with defaults", schema, "Elicitation completed"
    )


@server.tool(description="Tests elicitation with enum schema improvements per SEP-1330")
async def test_elicitation_sep1330_enums(ctx: Context) -> str:
    titled = [
        {"const": f"value{n}", "title": title} for n, title in ((1, "First"), (2, "Second"), (3, "Third"))
    ]
    schema = {
        "type": "object",
        "properties": {
            "untitledSingle": {
                "type": "string",
                "description": "Select one option",
                "enum": ["option1", "option2", "option3"],
            },
            "titledSingle": {
                "type": "string",
                "description": "Select one option with titles",
                "oneOf": [{**t, "title": f"{t['title']} Option"} for t in titled],
            },
            "legacyEnum": {
                "type": "string",
                "description": "Select one option (legacy)",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"],
            },
            "untitledMulti": {
                "type": "array",
                "description": "Select multiple options",
                "minItems": 1,
                "maxItems": 3,
                "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
            },
            "titledMulti": {
                "type": "array",
                "description": "Select multiple options with titles",
                "minItems": 1,
                "maxItems": 3,
                "items": {"anyOf": [{**t, "title": f"{t['title']} Choice"} for t in titled]},
            },
        },
        "required": [],
    }
    return await _elicit(ctx, "Please select options from the enum fields", schema, "Elicitation completed")


def test_dynamic_tool() -> str:
    """Added and removed by test_trigger_tool_change."""
    return "This is a dynamically added tool."


def test_dynamic_prompt() -> str:
    """Added and removed by test_trigger_prompt_change."""
    return "This is a dynamically added prompt."


async def _announce(ctx: Context, kind: str) -> None:
    """To 2026-07-28 listeners (the subscription bus) and to a legacy session (a notification)."""
    if kind == "tools":
        await ctx.notify_tools_changed()
        legacy = ctx.session.send_tool_list_changed
    else:
        await ctx.notify_prompts_changed()
        legacy = ctx.session.send_prompt_list_changed
    with contextlib.suppress(Exception):  # a 2026-07-28 request has no channel for it
        await legacy()


@server.tool(description="Adds or removes test_dynamic_tool and says the tool list changed")
async def test_trigger_tool_change(ctx: Context) -> str:
    if any(tool.name == "test_dynamic_tool" for tool in await server.list_tools()):
        server.remove_tool("test_dynamic_tool")
    else:
        server.add_tool(test_dynamic_tool, description="Dynamically added/removed tool")
    await _announce(ctx, "tools")
    return "Mutation triggered"


@server.tool(description="Adds or removes test_dynamic_prompt and says the prompt list changed")
async def test_trigger_prompt_change(ctx: Context) -> str:
    if any(prompt.name == "test_dynamic_prompt" for prompt in await server.list_prompts()):
        server.remove_prompt("test_dynamic_prompt")
    else:
        server.prompt(description="Dynamically added/removed prompt")(test_dynamic_prompt)
    await _announce(ctx, "prompts")
    return "Mutation triggered"


# ----- resources --------------------------------------------------------------------------------
@server.resource(
    "test://static-text", name="static-text", title="Static Text Resource", mime_type="text/plain"
)
def static_text() -> str:
    return "This is the content of the static text resource."


@server.resource(
    "test://static-binary", name="static-binary", title="Static Binary Resource", mime_type="image/png"
)
def static_binary() -> bytes:
    import base64

    return base64.b64decode(IMAGE)


@server.resource(
    "test://template/{id}/data", name="template", title="Resource Template", mime_type="application/json"
)
def template(id: str) -> str:
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


@server.resource(
    "test://watched-resource", name="watched-resource", title="Watched Resource", mime_type="text/plain"
)
def watched() -> str:
    return "Watched resource content"


# ----- prompts ----------------------------------------------------------------------------------
@server.prompt(title="Simple Test Prompt", description="A simple prompt without arguments")
def test_simple_prompt() -> str:
    return "This is a simple prompt for testing."


@server.prompt(title="Prompt With Arguments", description="A prompt with required arguments")
def test_prompt_with_arguments(arg1: str, arg2: str) -> str:
    return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"


@server.prompt(
    title="Prompt With Embedded Resource", description="A prompt that includes an embedded resource"
)
def test_prompt_with_embedded_resource(resourceUri: str) -> list[dict[str, Any]]:
    resource = {
        "uri": resourceUri,
        "mimeType": "text/plain",
        "text": "Embedded resource content for testing.",
    }
    return [
        {"role": "user", "content": {"type": "resource", "resource": resource}},
        {"role": "user", "content": _text("Please process the embedded resource above.")},
    ]


@server.prompt(title="Prompt With Image", description="A prompt that includes image content")
def test_prompt_with_image() -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": {"type": "image", "data": IMAGE, "mimeType": "image/png"}},
        {"role": "user", "content": _text("Please analyze the image above.")},
    ]


@server.completion()
async def complete(ref: Any, argument: Any, context: Any) -> types.Completion:
    return types.Completion(values=[], total=0, has_more=False)


# ----- the deprecated methods the 2025-11-25 scenarios still call -------------------------------
_subscribed: set[str] = set()
_cancelled: list[str] = []


async def _set_level(ctx: Any, params: types.SetLevelRequestParams) -> types.EmptyResult:
    await ctx.session.send_log_message("info", f"Log level set to: {params.level}", related_request_id=None)
    return types.EmptyResult()


async def _subscribe(ctx: Any, params: types.SubscribeRequestParams) -> types.EmptyResult:
    _subscribed.add(str(params.uri))
    return types.EmptyResult()


async def _unsubscribe(ctx: Any, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
    _subscribed.discard(str(params.uri))
    return types.EmptyResult()


_lowlevel = server._lowlevel_server
_lowlevel.add_request_handler("logging/setLevel", types.SetLevelRequestParams, _set_level)
_lowlevel.add_request_handler("resources/subscribe", types.SubscribeRequestParams, _subscribe)
_lowlevel.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, _unsubscribe)


conformance_mrtr.register(server)


def main(argv: list[str]) -> None:
    only = argv[argv.index("--only") + 1] if "--only" in argv else None
    if argv[:1] == ["http"] and only is not None:
        import uvicorn
        from era_shapes import OneEra  # beside this file

        app = OneEra(server.streamable_http_app(host="127.0.0.1"), only)
        uvicorn.run(app, host="127.0.0.1", port=int(argv[1]), log_level="warning")
    elif argv[:1] == ["http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(argv[1]))
    elif only is not None:
        from era_shapes import serve_stdio

        anyio.run(serve_stdio, server, only)
    else:
        server.run("stdio")


if __name__ == "__main__":
    main(sys.argv[1:])
