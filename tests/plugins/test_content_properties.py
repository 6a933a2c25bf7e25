"""Properties of the content walkers: a secret is found wherever it sits in a payload (a value, a
key, a list item, at any depth), and redaction leaves no trace of it."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.plugins.helpers import build, request, response
from watchgate.plugins.api import Allow, Deny, Modify

SECRETS = st.sampled_from(
    [
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
        "sk-proj-abc123XYZ789def456GHI012jkl345",
    ]
)
PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["", "hello", "a b c", "path/to/x"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abcdef"), inner, max_size=3),
    max_leaves=12,
)
PLACES = st.lists(st.sampled_from(["value", "key", "item", "text block"]), min_size=1, max_size=4)


def plant(body: Any, secret: str, places: list[str]) -> Any:
    """``body`` with the secret placed at the end of a chain of containers described by ``places``."""
    inner: Any = f"the token is {secret} ok"
    for place in reversed(places):
        if place == "value":
            inner = {"field": inner, "other": body}
        elif place == "key":
            inner = {f"{secret}": inner if not isinstance(inner, str) else 1}
        elif place == "item":
            inner = [body, inner]
        else:
            inner = [{"type": "text", "text": inner if isinstance(inner, str) else json.dumps(inner)}]
    return inner


@given(PLAIN, SECRETS, PLACES)
def test_a_planted_secret_is_redacted_wherever_it_sits(body: Any, secret: str, places: list[str]) -> None:
    plugin = build("secrets")
    for message, ctx, check in (
        (*request("tools/call", {"arguments": plant(body, secret, places)}), plugin.check_request),
        (*response("tools/call", {"content": plant(body, secret, places)}), plugin.check_response),
    ):
        verdict = check(message, ctx)
        assert isinstance(verdict, Modify)
        assert secret not in json.dumps(verdict.body)


@given(PLAIN)
def test_a_payload_without_secrets_is_left_as_it_is(body: Any) -> None:
    plugin = build("secrets")
    assert isinstance(plugin.check_request(*request("tools/call", {"arguments": body})), Allow)


@given(PLAIN, SECRETS, PLACES)
def test_block_mode_never_echoes_the_secret(body: Any, secret: str, places: list[str]) -> None:
    verdict = build("secrets", mode="block").check_request(
        *request("tools/call", {"arguments": plant(body, secret, places)})
    )
    assert isinstance(verdict, Deny) and secret not in verdict.reason
