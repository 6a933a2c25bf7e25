"""``tool_pinning``: a tool that changes after it was approved is stopped (the "rug pull").

The first time a server's tool is seen its name, description and input schema are hashed and
recorded in the pins file (``pins.py``), approved on trust (``trust_on_first_use: false`` makes
new tools wait for approval too). Every later list is compared; a tool whose hash changed is

- ``block`` (default): left out of ``tools/list`` (its new description never reaches the model)
  and refused on ``tools/call`` with -32010 naming the command that approves it;
- ``annotate``: listed with a warning in front of its description, calls allowed and flagged;
- ``audit_only``: only recorded and logged;

until ``watchgate pin approve NAME``. The gateway re-reads the pins file when it changes, so an
approval applies to calls at once and to the lists at the next re-list (``watchgate reload``).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import msgspec

from watchgate.plugins.api import (
    ALLOW,
    Plugin,
    PluginContext,
    PluginMessage,
    PluginSetup,
    Verdict,
    allow,
    deny,
)
from watchgate.plugins.pins import PinStore, state_path

_log = logging.getLogger("watchgate.plugins.tool_pinning")
WARNING = "[watchgate: this tool changed since it was approved; ask the user to review it] "


class ToolPinningConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    state_file: str | None = None
    trust_on_first_use: bool = True


class ToolPinningPlugin(Plugin):
    Config: ClassVar[type[Any]] = ToolPinningConfig
    modes: ClassVar[tuple[str, ...]] = ("block", "annotate", "audit_only")
    priority: ClassVar[int] = 30

    def __init__(self, config: ToolPinningConfig, *, mode: str, setup: PluginSetup) -> None:
        super().__init__(config, mode=mode, setup=setup)
        path = state_path(config.state_file, setup.config_dir)
        key = f"store:{path}"
        if key not in setup.shared:  # one store per file, shared by every server's instance
            setup.shared[key] = PinStore(path)
        self.store: PinStore = setup.shared[key]
        self._trust = config.trust_on_first_use

    def filter_list(self, kind: str, items: list[dict[str, Any]], ctx: PluginContext) -> list[dict[str, Any]]:
        if kind not in ("tools", "instructions"):  # a server's instructions are pinned as ":instructions"
            return items
        seen = self.store.observe(ctx.upstream, items, trust_new=self._trust)
        kept: list[dict[str, Any]] = []
        for item in items:
            name = item.get("name")
            observed = seen.get(name) if isinstance(name, str) else None
            if observed is None or observed.status == "approved":
                kept.append(item)
                continue
            if observed.was != observed.status:
                _log.warning(
                    "[%s] tool %r %s; %s until `watchgate pin approve %s`",
                    ctx.upstream,
                    name,
                    "changed since it was approved"
                    if observed.status == "changed"
                    else "is new and not approved",
                    "hidden and refused" if self.mode == "block" else "flagged",
                    _approve_name(ctx, str(name)),
                )
            if self.mode == "block":
                continue
            description = item.get("description")
            kept.append(
                {**item, "description": WARNING + (description if isinstance(description, str) else "")}
            )
        return kept if kept != items else items

    def check_request(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        if ctx.method != "tools/call" or ctx.name is None:
            return ALLOW
        pin = self.store.get(ctx.upstream, ctx.name)
        if pin is not None and pin.status == "approved":
            return ALLOW
        self.store.refresh()  # approved since? (`watchgate pin approve` writes the file)
        pin = self.store.get(ctx.upstream, ctx.name)
        if pin is None:  # never in a list: nothing to trust on first use, nothing approved either
            if self._trust:
                return ALLOW
            reason = f"tool {ctx.name!r} was never listed by the server, so it cannot have been approved"
            return allow(reason) if self.mode == "annotate" else deny(reason)
        if pin.status == "approved":
            return ALLOW
        what = "changed since it was approved" if pin.status == "changed" else "has not been approved"
        command = f"watchgate pin approve {_approve_name(ctx, ctx.name)}"
        reason = f"tool {ctx.name!r} {what}; approve it with `{command}`"
        return allow(reason) if self.mode == "annotate" else deny(reason)


def _approve_name(ctx: PluginContext, tool: str) -> str:
    return tool if ctx.server is None else f"{ctx.server}__{tool}"
