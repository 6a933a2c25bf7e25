"""The plugin API's small parts: verdicts, the message view, the base class defaults."""

from __future__ import annotations

import pytest

from tests.plugins.helpers import build, listing, request
from watchgate.plugins import (
    ALLOW,
    Allow,
    Deny,
    Modify,
    Plugin,
    PluginMessage,
    PluginSetup,
    allow,
    deny,
    modify,
)
from watchgate.plugins.prompt_injection import PromptInjectionConfig
from watchgate.plugins.secrets import SecretsConfig


def test_verdicts() -> None:
    assert allow() is ALLOW and repr(ALLOW) == "allow()"
    assert isinstance(allow("odd"), Allow) and repr(allow("odd")) == "allow('odd')"
    assert isinstance(deny("no"), Deny) and repr(deny("no")) == "deny('no')"
    changed = modify({"a": 1}, "why")
    assert isinstance(changed, Modify) and changed.body == {"a": 1} and repr(changed) == "modify(..., 'why')"


def test_the_message_body_follows_the_stage() -> None:
    assert PluginMessage("m", "request", params={"p": 1}).body == {"p": 1}
    assert PluginMessage("m", "notification", params={"n": 1}).body == {"n": 1}
    ok = PluginMessage("m", "response", result={"r": 1})
    failed = PluginMessage("m", "response", error={"code": 1})
    assert (ok.body, ok.is_error, failed.body, failed.is_error) == ({"r": 1}, False, {"code": 1}, True)


def test_the_base_class_allows_everything() -> None:
    plugin = Plugin(None, mode="block", setup=PluginSetup(None))
    message, ctx = request("tools/call", {})
    assert plugin.check_request(message, ctx) is ALLOW
    assert plugin.check_response(message, ctx) is ALLOW
    assert plugin.check_notification(message, ctx) is ALLOW
    items = [{"name": "x"}]
    assert plugin.filter_list("tools", items, listing()) is items


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"entropy_threshold": 9}, "entropy_threshold must be between 0 and 8 bits, got 9"),
        ({"entropy_min_length": 4}, "entropy_min_length must be at least 8, got 4"),
        ({"allow": ["("]}, "allow pattern '(' is not a valid regex"),
    ],
)
def test_secrets_config_checks(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        SecretsConfig(**config)  # type: ignore[arg-type]


def test_prompt_injection_config_checks() -> None:
    with pytest.raises(ValueError, match="unknown detector 'jailbreak'"):
        PromptInjectionConfig(detect=("jailbreak",))
    assert build("prompt_injection").find("") == []
