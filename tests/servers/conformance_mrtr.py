"""The conformance fixture's multi round-trip tools and prompt (2026-07-28, SEP-2322), and the
tool that needs a client capability (``test_missing_capability``): the
``test_input_required_result_*`` names the suite's MRTR scenarios call, behaving as its reference
server does (``examples/servers/typescript/everything-server.ts``). Each answers
``input_required`` until the retry carries the inputs it asked for; the states are the
server's own (JSON, some HMAC-signed), echoed untouched by every client and gateway on the way.

These exist only on a 2026-07-28 connection (the fixture over HTTP): on a connection of the
``initialize`` era there is no ``input_required`` to answer with.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from typing import Any

from mcp import types
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError

_SECRET = secrets.token_bytes(32)
_MISSING_CAPABILITY = -32021


def _ask(message: str, field: str, kind: str = "string") -> dict[str, Any]:
    schema = {"type": "object", "properties": {field: {"type": kind}}, "required": [field]}
    return {"method": "elicitation/create", "params": {"message": message, "requestedSchema": schema}}


def _sample(text: str, max_tokens: int) -> dict[str, Any]:
    message = {"role": "user", "content": {"type": "text", "text": text}}
    return {"method": "sampling/createMessage", "params": {"messages": [message], "maxTokens": max_tokens}}


_ROOTS = {"method": "roots/list", "params": {}}


def _input_required(requests: dict[str, Any], state: str | None = None) -> types.InputRequiredResult:
    wire: dict[str, Any] = {"inputRequests": requests}
    if state is not None:
        wire["requestState"] = state
    return types.InputRequiredResult.model_validate(wire)


def _responses(ctx: Context) -> dict[str, Any]:
    given = ctx.input_responses or {}
    return {key: value.model_dump(by_alias=True, exclude_none=True) for key, value in given.items()}


def _text_of(response: Any, field: str) -> str:
    content = response.get("content") if isinstance(response, dict) else None
    value = content.get(field) if isinstance(content, dict) else None
    return value if isinstance(value, str) else "unknown"


def _state(ctx: Context) -> dict[str, Any] | None:
    try:
        state = json.loads(ctx.request_state or "")
    except ValueError:
        return None
    return state if isinstance(state, dict) else None


def _signed(payload: dict[str, Any]) -> str:
    data = json.dumps(payload)
    return json.dumps({"data": data, "hmac": hmac.new(_SECRET, data.encode(), hashlib.sha256).hexdigest()})


def _verified(raw: str) -> dict[str, Any] | None:
    try:
        wrapper = json.loads(raw)
        expected = hmac.new(_SECRET, wrapper["data"].encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, wrapper["hmac"]):
            return None
        payload = json.loads(wrapper["data"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return payload if isinstance(payload, dict) else None


def _nonce() -> str:
    return str(uuid.uuid4())


def register(server: MCPServer[Any]) -> None:
    """Add the MRTR tools and prompt to ``server``."""

    @server.tool()
    async def test_input_required_result_elicitation(ctx: Context) -> Any:
        """Asks the user's name through input_required (elicitation)."""
        given = _responses(ctx)
        if "user_name" in given:
            return f"Hello, {_text_of(given['user_name'], 'name')}!"
        return _input_required({"user_name": _ask("What is your name?", "name")})

    @server.tool()
    async def test_input_required_result_sampling(ctx: Context) -> Any:
        """Asks for a completion through input_required (sampling)."""
        given = _responses(ctx)
        if "sample_request" in given:
            content = given["sample_request"].get("content")
            text = content.get("text") if isinstance(content, dict) else None
            return f"Sampling result: {text if isinstance(text, str) else 'no response'}"
        return _input_required({"sample_request": _sample("What is the capital of France?", 100)})

    @server.tool()
    async def test_input_required_result_list_roots(ctx: Context) -> Any:
        """Asks for the roots through input_required."""
        given = _responses(ctx)
        if "roots_request" in given:
            roots = given["roots_request"].get("roots")
            return f"Found {len(roots) if isinstance(roots, list) else 0} root(s)"
        return _input_required({"roots_request": _ROOTS})

    @server.tool()
    async def test_input_required_result_request_state(ctx: Context) -> Any:
        """Asks for a confirmation, with a requestState it checks."""
        given, state = _responses(ctx), _state(ctx)
        confirmed = given.get("confirm", {}).get("content")
        ok = isinstance(confirmed, dict) and confirmed.get("ok") is True
        if state and state.get("kind") == "request-state" and ok:
            return "state-ok: requestState validated"
        ask = {"confirm": _ask("Please confirm", "ok", "boolean")}
        return _input_required(ask, json.dumps({"kind": "request-state", "nonce": _nonce()}))

    @server.tool()
    async def test_input_required_result_multiple_inputs(ctx: Context) -> Any:
        """Asks three things in one input_required."""
        given, state = _responses(ctx), _state(ctx)
        if (
            state
            and state.get("kind") == "multiple-inputs"
            and {"user_name", "greeting", "client_roots"} <= set(given)
        ):
            content = given["greeting"].get("content")
            greeting = content.get("text") if isinstance(content, dict) else None
            roots = given["client_roots"].get("roots")
            return (
                f"Name: {_text_of(given['user_name'], 'name')}; "
                f"Greeting: {greeting if isinstance(greeting, str) else 'Hello there!'}; "
                f"Roots: {len(roots) if isinstance(roots, list) else 0}"
            )
        asks = {
            "user_name": _ask("What is your name?", "name"),
            "greeting": _sample("Generate a greeting", 50),
            "client_roots": _ROOTS,
        }
        return _input_required(asks, json.dumps({"kind": "multiple-inputs", "nonce": _nonce()}))

    @server.tool()
    async def test_input_required_result_multi_round(ctx: Context) -> Any:
        """Asks in two rounds, carrying the first answer in its state."""
        given, state = _responses(ctx), _state(ctx)
        if state and state.get("round") == 1 and "step1" in given:
            name = _text_of(given["step1"], "name")
            ask = {"step2": _ask("Step 2: What is your favorite color?", "color")}
            return _input_required(ask, json.dumps({"round": 2, "name": name, "nonce": _nonce()}))
        if state and state.get("round") == 2 and "step2" in given:
            name = state.get("name") if isinstance(state.get("name"), str) else "friend"
            return f"Multi-round complete for {name} who likes {_text_of(given['step2'], 'color')}"
        ask = {"step1": _ask("Step 1: What is your name?", "name")}
        return _input_required(ask, json.dumps({"round": 1, "nonce": _nonce()}))

    @server.tool()
    async def test_input_required_result_tampered_state(ctx: Context) -> Any:
        """Refuses a requestState whose signature does not match."""
        if ctx.request_state:
            verified = _verified(ctx.request_state)
            if verified is None:
                raise MCPError(types.INVALID_PARAMS, "requestState integrity check failed")
            if verified.get("kind") == "tamper-test" and "confirm" in _responses(ctx):
                return "integrity-ok: state verified"
        ask = {"confirm": _ask("Please confirm", "ok", "boolean")}
        return _input_required(ask, _signed({"kind": "tamper-test", "nonce": _nonce()}))

    @server.tool()
    async def test_input_required_result_capabilities(ctx: Context) -> Any:
        """Asks only what the request's capabilities allow."""
        declared = ctx.client_capabilities
        asks: dict[str, Any] = {}
        if declared is not None and declared.elicitation is not None:
            asks["elicit_input"] = _ask("Elicitation input", "value")
        if declared is not None and declared.sampling is not None:
            asks["sample_input"] = _sample("Sample request", 50)
        given = _responses(ctx)
        if given:
            return f"capabilities-ok: received {','.join(given)}"
        if not asks:
            return "No supported capabilities declared"
        return _input_required(asks, _signed({"kind": "capabilities-test", "nonce": _nonce()}))

    @server.prompt()
    async def test_input_required_result_prompt(ctx: Context) -> Any:
        """A prompt that asks for its context through input_required."""
        given = _responses(ctx)
        if "user_context" in given:
            text = f"Prompt with context: {_text_of(given['user_context'], 'context')}"
            return [{"role": "user", "content": {"type": "text", "text": text}}]
        return _input_required({"user_context": _ask("What context should the prompt use?", "context")})

    @server.tool()
    async def test_missing_capability(ctx: Context) -> str:
        """Needs a client that declared sampling: refuses others with -32021."""
        declared = ctx.client_capabilities
        if declared is None or declared.sampling is None:
            required = {"requiredCapabilities": {"sampling": {}}}
            raise MCPError(_MISSING_CAPABILITY, "MissingRequiredClientCapabilityError", required)
        return "Success"
