"""An example Watchgate plugin: keep project code names out of tool traffic.

Requests whose arguments mention a code name are refused (or, in ``redact`` mode, the word is
replaced); results have it replaced; tools whose description mentions one are hidden.

Use it with the module on the gateway's ``PYTHONPATH`` (or in an installed package)::

    plugins:
      - name: keyword_guard:KeywordGuard
        mode: block              # block | redact | audit_only
        config:
          words: [bluebird, nightjar]

This file is executed by the test suite (tests/plugins/test_docs.py), so it stays correct.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import msgspec

from watchgate.plugins import ALLOW, Plugin, PluginContext, PluginMessage, Verdict, deny, modify


class KeywordConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    words: tuple[str, ...] = ()
    replacement: str = "[code name]"


class KeywordGuard(Plugin):
    Config: ClassVar[type[Any]] = KeywordConfig
    modes: ClassVar[tuple[str, ...]] = ("block", "redact", "audit_only")  # the first is the default
    priority: ClassVar[int] = 45  # after the built-in secrets filter (40)

    def __init__(self, config: KeywordConfig, *, mode: str, setup: Any) -> None:
        super().__init__(config, mode=mode, setup=setup)
        words = "|".join(re.escape(word) for word in config.words) or "(?!)"
        self.pattern = re.compile(rf"\b(?:{words})\b", re.IGNORECASE)

    def _replace(self, value: Any) -> Any:
        """A copy of ``value`` with every code name replaced (the payload is shared: no in-place edits)."""
        if isinstance(value, str):
            return self.pattern.sub(self.config.replacement, value)
        if isinstance(value, dict):
            return {key: self._replace(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._replace(item) for item in value]
        return value

    # plain methods run inline; ``async def`` works too and then runs under the plugin's timeout
    def check_request(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        if ctx.method != "tools/call":
            return ALLOW
        arguments = message.params.get("arguments") if isinstance(message.params, dict) else None
        if not self.pattern.search(repr(arguments)):
            return ALLOW
        where = f"tool {ctx.name!r}" + (f" on {ctx.server!r}" if ctx.server else "")
        if self.mode == "block":
            return deny(f"the arguments of {where} mention a code name")  # never the word itself
        return modify({**message.params, "arguments": self._replace(arguments)}, "code name replaced")

    def check_response(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        body = message.body
        changed = self._replace(body)
        return ALLOW if changed == body else modify(changed, "code name replaced")

    def filter_list(self, kind: str, items: list[dict[str, Any]], ctx: PluginContext) -> list[dict[str, Any]]:
        if kind != "tools":
            return items
        kept = [item for item in items if not self.pattern.search(str(item.get("description", "")))]
        return kept if len(kept) != len(items) else items  # the same list when nothing changes
