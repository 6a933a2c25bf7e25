"""``secrets``: each kind found and redacted, blocking, the entropy threshold, encoded and split
secrets, and the plugin in a gateway. Test keys are the documented example keys, never real."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
import trio

from tests.gateway.fakes import FakeServer, echo, running_gateway
from tests.plugins.helpers import build, config_with, echo_args, listing, request, response, tool_returning
from watchgate.plugins.api import Allow, Deny, Modify
from watchgate.plugins.content import Finding, Span, describe, redact, render
from watchgate.plugins.secrets import decode_base64, entropy

AWS = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234\n-----END RSA PRIVATE KEY-----"

CASES = [
    (f"key={AWS}", "key=[REDACTED:aws_access_key]"),
    (f"aws_secret_access_key = {AWS_SECRET}", "aws_secret_access_key = [REDACTED:aws_secret_key]"),
    (
        f'{{"AWS_SECRET_ACCESS_KEY": "{AWS_SECRET}"}}',
        '{"AWS_SECRET_ACCESS_KEY": "[REDACTED:aws_secret_key]"}',
    ),
    (f"token {GITHUB} end", "token [REDACTED:github_token] end"),
    ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "[REDACTED:github_token]"),
    ("glpat-abcdefghij0123456789", "[REDACTED:gitlab_token]"),
    ("xoxb-123456789012-abcdefghijkl", "[REDACTED:slack_token]"),
    (
        "hook https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "hook [REDACTED:slack_webhook]",
    ),
    ("AIzaSyA1234567890abcdefghijklmnopqrstuv", "[REDACTED:google_api_key]"),
    (f"here:\n{PEM}\nthere", "here:\n[REDACTED:private_key]\nthere"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA (truncated", "[REDACTED:private_key]"),
    (f"Bearer {JWT}", "Bearer [REDACTED:jwt]"),
    ("api key sk-proj-abc123XYZ789def456GHI012jkl345", "api key [REDACTED:high_entropy]"),
]


@pytest.mark.parametrize(
    ("text", "redacted"), CASES, ids=[c[1].split("REDACTED:")[-1].split("]")[0] for c in CASES]
)
def test_each_kind_is_found_and_redacted(text: str, redacted: str) -> None:
    plugin = build("secrets")
    assert redact(text, plugin.find(text)) == redacted


@pytest.mark.parametrize(
    "text",
    [
        "an ordinary sentence about /usr/local/lib/python3.11/site-packages",
        "commit da39a3ee5e6b4b0d3255bfef95601890afd80709 (hex, low entropy)",
        "id 550e8400-e29b-41d4-a716-446655440000",
        "some_long_variable_name_without_digits_here",
        "AKIA_NOT_A_KEY and eyJ alone",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert build("secrets").find(text) == []


def test_the_entropy_threshold_and_length_are_configurable() -> None:
    token = "sk-proj-abc123XYZ789def456GHI012jkl345"
    assert entropy(token) == pytest.approx(4.83, abs=0.01)
    assert build("secrets", {"entropy_threshold": 5.0}).find(token) == []
    assert build("secrets", {"entropy_min_length": 60}).find(token) == []
    assert build("secrets", {"kinds": ["jwt"]}).find(token) == []
    assert build("secrets", {"entropy_threshold": 3.0}).find(
        "x" * 5 + "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    )


def test_kinds_can_be_limited_and_values_allowed() -> None:
    assert build("secrets", {"kinds": ["github_token"]}).find(f"{AWS} {GITHUB}")[0].kind == "github_token"
    assert build("secrets", {"kinds": []}).find(AWS) == []
    allowed = build("secrets", {"allow": [AWS, "sk-proj-.*"]})
    assert allowed.find(f"{AWS} sk-proj-abc123XYZ789def456GHI012jkl345") == []


def test_a_base64_encoded_secret_is_found() -> None:
    plugin = build("secrets")
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        blob = encode(f"aws_access_key_id = {AWS}\n".encode()).decode()
        assert (
            redact(f"config: {blob}", plugin.find(f"config: {blob}")) == "config: [REDACTED:aws_access_key]"
        )
    pem = base64.b64encode(PEM.encode()).decode()
    assert plugin.find(pem)[0].kind == "private_key"
    assert (
        build("secrets", {"base64": False, "kinds": ["aws_access_key"]}).find(
            base64.b64encode(AWS.encode()).decode()
        )
        == []
    )


def test_base64_decoding_rejects_what_is_not_text() -> None:
    assert decode_base64(base64.b64encode(bytes(range(256))).decode()) is None
    assert decode_base64("abc+def_ghi") is None  # both alphabets at once
    assert decode_base64("abcde") is None  # not a valid length
    assert decode_base64(base64.b64encode(b"plain words").decode()) == "plain words"


def test_secrets_split_across_sibling_fields_are_found() -> None:
    plugin = build("secrets")
    params = {"name": "t", "arguments": {"a": "AKIAIOSF", "b": "ODNN7EXAMPLE", "other": 1}}
    verdict = plugin.check_request(*request("tools/call", params))
    assert isinstance(verdict, Modify)
    assert verdict.body["arguments"] == {
        "a": "[REDACTED:aws_access_key]",
        "b": "[REDACTED:aws_access_key]",
        "other": 1,
    }
    assert verdict.reason == "secret (aws_access_key) found in params.arguments (split across 2 fields)"
    pieces = ["prefix ", "ghp_a1B2c3D4e5F6g7H8", "i9J0k1L2m3N4o5P6q7R8", " suffix"]
    verdict = plugin.check_request(*request("tools/call", {"arguments": {"parts": pieces}}))
    assert isinstance(verdict, Modify)
    assert verdict.body["arguments"]["parts"] == [
        "prefix ",
        "[REDACTED:github_token]",
        "[REDACTED:github_token]",
        " suffix",
    ]
    assert build("secrets", {"split_fields": False}).check_request(*request("tools/call", params)) is not None
    assert isinstance(
        build("secrets", {"split_fields": False}).check_request(*request("tools/call", params)), Allow
    )


def test_a_secret_split_across_two_text_blocks_is_found() -> None:
    blocks = [
        {"type": "text", "text": "your key: ghp_a1B2c3D4e5F6g7H8"},
        {"type": "image", "data": "AAAA", "mimeType": "image/png"},
        {"type": "text", "text": "i9J0k1L2m3N4o5P6q7R8 (keep it safe)"},
    ]
    verdict = build("secrets").check_response(*response("tools/call", {"content": blocks}))
    assert isinstance(verdict, Modify)
    texts = [block.get("text") for block in verdict.body["content"]]
    assert texts == ["[REDACTED:github_token]", None, "[REDACTED:github_token]"]
    assert verdict.reason == "secret (github_token) found in result.content (split across 2 fields)"


def test_a_secret_used_as_an_object_key_is_found() -> None:
    plugin = build("secrets")
    verdict = plugin.check_request(*request("tools/call", {"name": "t", "arguments": {AWS: "value", "k": 1}}))
    assert isinstance(verdict, Modify)
    assert verdict.body["arguments"] == {"[REDACTED:aws_access_key]": "value", "k": 1}
    assert verdict.reason == "secret (aws_access_key) found in params.arguments (a key)"
    blocked = build("secrets", mode="block").check_response(
        *response("tools/call", {"structuredContent": {GITHUB: 1}})
    )
    assert isinstance(blocked, Deny) and GITHUB not in blocked.reason


def test_a_secret_inside_one_field_is_not_counted_twice() -> None:
    verdict = build("secrets").check_request(*request("tools/call", {"a": f"x {AWS}", "b": "tail"}))
    assert isinstance(verdict, Modify) and verdict.body == {"a": "x [REDACTED:aws_access_key]", "b": "tail"}
    assert "split" not in (verdict.reason or "")


def test_block_mode_names_kinds_and_places_but_never_the_value() -> None:
    plugin = build("secrets", mode="block")
    body = {"content": [{"type": "text", "text": f"{AWS} and {JWT}"}], "structuredContent": {"k": [GITHUB]}}
    verdict = plugin.check_response(*response("tools/call", body))
    assert isinstance(verdict, Deny)
    assert verdict.reason == (
        "secret (aws_access_key, github_token, jwt) found in result.content[0].text, result.structuredContent.k[0]"
    )
    assert AWS not in verdict.reason and GITHUB not in verdict.reason


def test_errors_and_notifications_are_scanned_and_directions_configurable() -> None:
    plugin = build("secrets")
    error = {"code": -1, "message": f"bad key {AWS}"}
    verdict = plugin.check_response(*response("tools/call", None, error=error))
    assert isinstance(verdict, Modify) and verdict.body["message"] == "bad key [REDACTED:aws_access_key]"
    note, ctx = request("notifications/message", {"data": f"token={GITHUB}"})
    assert isinstance(plugin.check_notification(note, ctx), Modify)
    requests_only = build("secrets", {"directions": ["request"]})
    assert isinstance(requests_only.check_response(*response("tools/call", {"text": AWS})), Allow)
    assert isinstance(requests_only.check_notification(note, ctx), Allow)
    assert isinstance(plugin.check_request(*request("tools/call", None)), Allow)
    tools = [{"name": "t", "description": f"uses {AWS}"}]
    assert plugin.filter_list("tools", tools, listing()) is tools  # lists are not a direction by default
    listed = build("secrets", {"directions": ["list"]}).filter_list("tools", tools, listing())
    assert listed == [{"name": "t", "description": "uses [REDACTED:aws_access_key]"}]
    assert (
        build("secrets", {"directions": ["list"]}, mode="block").filter_list("tools", tools, listing()) == []
    )


def test_reasons_list_at_most_three_places() -> None:
    findings = [Finding("jwt", f"params.a[{i}]") for i in range(5)]
    assert (
        describe("secret", findings)
        == "secret (jwt) found in params.a[0], params.a[1], params.a[2] and 2 more"
    )
    assert render((((None, "result"), "content"), 0)) == "result.content[0]"
    assert (
        redact("abcdef", [Span(1, 4, "x"), Span(2, 3, "y"), Span(3, 5, "z")]) == "a[REDACTED:x][REDACTED:z]f"
    )


async def test_secrets_in_a_gateway_redact_both_ways(autojump_clock: trio.testing.MockClock) -> None:
    leaky = FakeServer("leaky", tools={"read": tool_returning(f"aws_access_key_id={AWS}"), "echo": echo_args})
    config = config_with("leaky", plugins=[{"name": "secrets"}])
    async with running_gateway(config, leaky) as (_, client):
        await client.initialize()
        result = await client.result("tools/call", {"name": "read"})
        assert result["content"][0]["text"] == "aws_access_key_id=[REDACTED:aws_access_key]"
        await client.result("tools/call", {"name": "echo", "arguments": {"note": f"use {GITHUB}"}})
        sent = leaky.session.requests("tools/call")[-1]["params"]["arguments"]
        assert sent == {"note": "use [REDACTED:github_token]"}


async def test_secrets_block_mode_per_server(autojump_clock: trio.testing.MockClock) -> None:
    strict = FakeServer("strict", tools={"read": tool_returning(AWS)})
    relaxed = FakeServer("relaxed", tools={"read": tool_returning(AWS), "echo": echo})
    config = config_with(
        "strict",
        "relaxed",
        plugins=[{"name": "secrets", "mode": "block"}],
        per_server={"relaxed": [{"name": "secrets", "mode": "redact"}]},
    )
    async with running_gateway(config, strict, relaxed) as (_, client):
        await client.initialize()
        error = (await client.request("tools/call", {"name": "strict__read"}))["error"]
        assert error["code"] == -32010 and AWS not in json.dumps(error)
        assert (
            error["message"]
            == "blocked by plugin 'secrets': secret (aws_access_key) found in result.content[0].text"
        )
        text: Any = (await client.result("tools/call", {"name": "relaxed__read"}))["content"][0]["text"]
        assert text == "[REDACTED:aws_access_key]"


async def test_a_redacted_uri_is_not_written_into_the_log(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    server = FakeServer("store", tools={"echo": echo}, resources=[f"https://s3.test/x?access_key={AWS}"])
    server.capabilities = {"tools": {}, "resources": {}}
    config = config_with("store", plugins=[{"name": "secrets"}])
    with caplog.at_level(logging.INFO, logger="watchgate"):
        async with running_gateway(config, server) as (_, client):
            await client.initialize()
            await client.request("resources/read", {"uri": f"https://s3.test/x?access_key={AWS}"})
    assert "secrets changed the request of resources/read" in caplog.text
    assert AWS not in caplog.text
