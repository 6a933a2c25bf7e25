"""Plugins made for the tests, loaded by dotted path (``tests.plugins.sample_plugins:Recorder``)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import msgspec
import trio

from watchgate.plugins import ALLOW, Plugin, PluginContext, PluginMessage, Verdict, allow, deny, modify

Stage = Literal["request", "response", "notification", "list"]


class TagConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    tag: str = ""


class Recorder(Plugin):
    """Remembers what it was shown (in ``setup.shared["seen"]``, one list per pipeline)."""

    Config: ClassVar[type[Any]] = TagConfig

    def __init__(self, config: Any, *, mode: str, setup: Any) -> None:
        super().__init__(config, mode=mode, setup=setup)
        self.seen: list[dict[str, Any]] = setup.shared.setdefault("seen", [])

    def _note(self, stage: str, message: Any, ctx: PluginContext) -> None:
        self.seen.append(
            {
                "stage": stage,
                "tag": ctx.config.tag,
                "server": ctx.server,
                "upstream": ctx.upstream,
                "client": ctx.client_id,
                "method": ctx.method,
                "name": ctx.name,
                "public": ctx.public_name,
                "body": message,
                "decisions": list(ctx.call.decisions) if ctx.call is not None else None,
            }
        )

    async def check_request(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        self._note("request", message.params, ctx)
        return ALLOW

    async def check_response(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        self._note("response", message.body, ctx)
        return ALLOW

    async def check_notification(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        self._note("notification", message.params, ctx)
        return ALLOW

    async def filter_list(
        self, kind: str, items: list[dict[str, Any]], ctx: PluginContext
    ) -> list[dict[str, Any]]:
        self._note(f"list:{kind}", [i.get("name", i.get("uri")) for i in items], ctx)
        return items


class Tagger(Plugin):
    """Appends its tag to ``params.arguments.trail`` and to the first text block of a result."""

    Config: ClassVar[type[Any]] = TagConfig
    modes: ClassVar[tuple[str, ...]] = ("redact", "audit_only")

    def check_request(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        params = dict(message.params)
        arguments = dict(params.get("arguments") or {})
        arguments["trail"] = arguments.get("trail", "") + ctx.config.tag
        params["arguments"] = arguments
        return modify(params, f"tagged {ctx.config.tag}")

    def check_response(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        if message.error is not None:
            return modify({**message.error, "message": message.error["message"] + ctx.config.tag})
        result = dict(message.result)
        block = dict(result["content"][0])
        block["text"] += ctx.config.tag
        result["content"] = [block, *result["content"][1:]]
        return modify(result)

    def check_notification(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        return modify({**message.params, "tag": ctx.config.tag})


class StageConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    stages: tuple[Stage, ...] = ("request", "response", "notification", "list")
    seconds: float = 10.0
    note: str | None = None


class Denier(Plugin):
    """Denies in the configured stages (in ``list``: hides everything); with ``note``, flags instead."""

    Config: ClassVar[type[Any]] = StageConfig

    def _verdict(self, stage: str) -> Verdict:
        if stage not in self.config.stages:
            return ALLOW
        if self.config.note:
            return allow(self.config.note)
        return deny(f"no {stage}s today")

    def check_request(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        return self._verdict("request")

    def check_response(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        return self._verdict("response")

    def check_notification(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        return self._verdict("notification")

    def filter_list(self, kind: str, items: list[dict[str, Any]], ctx: PluginContext) -> list[dict[str, Any]]:
        return [] if "list" in self.config.stages else items


class Raiser(Plugin):
    """Raises (with a message that must not reach the client) in the configured stages."""

    Config: ClassVar[type[Any]] = StageConfig

    def _maybe_raise(self, stage: str) -> None:
        if stage in self.config.stages:
            raise RuntimeError("secret detail AKIAIOSFODNN7EXAMPLE")

    def check_request(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        self._maybe_raise("request")
        return ALLOW

    def check_response(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        self._maybe_raise("response")
        return ALLOW

    def check_notification(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        self._maybe_raise("notification")
        return ALLOW

    def filter_list(self, kind: str, items: list[dict[str, Any]], ctx: PluginContext) -> list[dict[str, Any]]:
        self._maybe_raise("list")
        return items


class FailsOpen(Raiser):
    fail_closed: ClassVar[bool] = False


class Sleeper(Plugin):
    """An async plugin that waits ``seconds`` in the configured stages."""

    Config: ClassVar[type[Any]] = StageConfig

    async def _wait(self, stage: str) -> None:
        if stage in self.config.stages:
            await trio.sleep(self.config.seconds)

    async def check_request(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        await self._wait("request")
        return ALLOW

    async def check_response(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        await self._wait("response")
        return ALLOW

    async def check_notification(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        await self._wait("notification")
        return ALLOW

    async def filter_list(
        self, kind: str, items: list[dict[str, Any]], ctx: PluginContext
    ) -> list[dict[str, Any]]:
        await self._wait("list")
        return items


class Hog(Plugin):
    """A plain (sync) plugin that keeps the CPU past its timeout (it moves the mock clock)."""

    Config: ClassVar[type[Any]] = StageConfig

    def check_request(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        clock = trio.lowlevel.current_clock()
        clock.jump(self.config.seconds)  # type: ignore[attr-defined]
        return ALLOW


class Nonsense(Plugin):
    """Answers things that are not verdicts or lists."""

    Config: ClassVar[type[Any]] = StageConfig

    def check_request(self, message: PluginMessage, ctx: PluginContext) -> Any:
        return "yes"

    def filter_list(self, kind: str, items: list[dict[str, Any]], ctx: PluginContext) -> Any:
        return "all of them"


class NotAPlugin:
    pass


class Broken(Plugin):
    """Cannot be built."""

    def __init__(self, config: Any, *, mode: str, setup: Any) -> None:
        raise OSError("no such device")


class SecondTagger(Tagger):
    pass


class ThirdTagger(Tagger):
    pass
