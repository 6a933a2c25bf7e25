"""``pii``: each type found (and look-alikes not), per-type switches, redact and block."""

from __future__ import annotations

import pytest
import trio

from tests.gateway.fakes import FakeServer, running_gateway
from tests.plugins.helpers import build, config_with, request, response, tool_returning
from watchgate.plugins.api import Allow, Deny, Modify
from watchgate.plugins.content import redact
from watchgate.plugins.pii import iban_valid, luhn


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("mail alice@example.com now", "mail [REDACTED:email] now"),
        ("call +44 20 7946 0958 today", "call [REDACTED:phone] today"),
        ("call (555) 123-4567 or 555-123-4567", "call [REDACTED:phone] or [REDACTED:phone]"),
        ("card 4111 1111 1111 1111.", "card [REDACTED:credit_card]."),
        ("card 5500-0000-0000-0004", "card [REDACTED:credit_card]"),
        ("iban GB82 WEST 1234 5698 7654 32", "iban [REDACTED:iban]"),
        ("iban DE89370400440532013000", "iban [REDACTED:iban]"),
        ("ssn 123-45-6789", "ssn [REDACTED:ssn]"),
        ("from 192.168.1.20 and 2001:db8::1", "from [REDACTED:ip] and [REDACTED:ip]"),
    ],
)
def test_each_type_is_found(text: str, redacted: str) -> None:
    plugin = build("pii")
    assert redact(text, plugin.find(text)) == redacted


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails Luhn",
        "order 1700000000000 is a timestamp",
        "iban GB00 WEST 1234 5698 7654 32 has bad check digits",
        "ssn 000-12-3456 and 666-12-3456 are never issued",
        "at 10:30:00 on 2024-01-15, version 1.2.3",
        "v 999.1.1.1 and ::",
        "short +12 and x@y",
    ],
)
def test_look_alikes_are_not_personal_data(text: str) -> None:
    assert build("pii").find(text) == []


def test_validators() -> None:
    assert luhn("4111111111111111") and not luhn("4111111111111112") and not luhn("123")
    assert (
        iban_valid("GB82WEST12345698765432")
        and not iban_valid("GB82WEST1234")
        and not iban_valid("GB00WEST12345698765432")
    )


def test_types_can_be_switched_off() -> None:
    only_email = build("pii", {"types": ["email"]})
    assert [s.kind for s in only_email.find("a@b.example 192.168.0.1")] == ["email"]
    assert build("pii", {"types": []}).find("a@b.example") == []


def test_redact_and_block_modes() -> None:
    body = {"content": [{"type": "text", "text": "write to bob@example.org"}]}
    redacted = build("pii").check_response(*response("tools/call", body))
    assert isinstance(redacted, Modify)
    assert redacted.body["content"][0]["text"] == "write to [REDACTED:email]"
    assert redacted.reason == "personal data (email) found in result.content[0].text"
    blocked = build("pii", mode="block").check_request(
        *request("tools/call", {"arguments": {"to": "bob@example.org"}})
    )
    assert isinstance(blocked, Deny) and "bob" not in blocked.reason
    assert isinstance(build("pii").check_request(*request("tools/call", {"arguments": {"n": 5}})), Allow)


async def test_pii_in_a_gateway(autojump_clock: trio.testing.MockClock) -> None:
    crm = FakeServer("crm", tools={"lookup": tool_returning("Alice, alice@example.com, +1 415 555 0100")})
    config = config_with("crm", plugins=[{"name": "pii", "config": {"types": ["email"]}}])
    async with running_gateway(config, crm) as (_, client):
        await client.initialize()
        result = await client.result("tools/call", {"name": "lookup"})
        assert result["content"][0]["text"] == "Alice, [REDACTED:email], +1 415 555 0100"
