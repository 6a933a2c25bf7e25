"""The plugin pipeline: the configured plugins of every upstream, run as one message hook.

Per message: the payload is decoded once, each plugin that implements the stage runs in order
and sees the previous plugins' changes, and the payload is encoded once more only if a plugin
changed it. Every decision is appended to the call's ``decisions`` (the audit log reads them).

- ``audit_only`` mode: a denial or change is recorded (``enforced=False``), never applied.
- Fail closed: a plugin that raises, answers something that is not a verdict, or runs past its
  timeout denies the message (``error`` decision, the traceback in the log, the client told
  only that the plugin failed); its ``filter_list`` failing hides that whole list. A plugin class
  with ``fail_closed = False``, or in ``audit_only`` mode, fails open instead.
- Timeouts: an ``async`` check runs under ``trio.move_on_after(timeout)``; a plain one cannot be
  interrupted, so a run that took longer than the timeout is discarded and fails the same way.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec
import trio
from msgspec import UNSET, Raw

from watchgate.errors import PluginLoadError, PolicyDenied
from watchgate.hooks import CallContext, Decision, Stage
from watchgate.plugins.api import (
    ALLOW,
    Allow,
    Deny,
    Modify,
    Plugin,
    PluginContext,
    PluginMessage,
    PluginSetup,
)
from watchgate.plugins.registry import ResolvedPlugin, resolve
from watchgate.protocol import jsonrpc
from watchgate.protocol.catalog import LIST_KINDS
from watchgate.protocol.jsonrpc import Message, error_response

if TYPE_CHECKING:
    from watchgate.config.schema import GatewayConfig

__all__ = ["PluginPipeline", "build_plugins"]

INSTRUCTIONS: Final = ":instructions"  # the pin of a server's instructions (no tool name has a colon)
_METHODS: Final[dict[Stage, str]] = {
    "request": "check_request",
    "response": "check_response",
    "notification": "check_notification",
    "list": "filter_list",
}
_log = logging.getLogger("watchgate.plugins")


class _Failed:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


@dataclass(slots=True)
class _Step:
    """One plugin's method for one stage of one upstream."""

    name: str
    plugin: Plugin
    fn: Callable[..., Any]
    is_async: bool
    timeout: float
    audit_only: bool
    fail_closed: bool
    allowed: Decision  # the common answer, built once


@dataclass
class _Plan:
    plugins: list[Plugin] = field(default_factory=list)
    request: list[_Step] = field(default_factory=list)
    response: list[_Step] = field(default_factory=list)
    notification: list[_Step] = field(default_factory=list)
    list: list[_Step] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.request or self.response or self.notification or self.list)


def build_plugins(config: GatewayConfig) -> PluginPipeline | None:
    """The pipeline for ``config``, or None when no plugin is enabled for any upstream."""
    if not config.plugins and not any(u.plugins for u in config.proxy.upstreams):
        return None
    pipeline = PluginPipeline(config)
    return None if pipeline.empty else pipeline


class PluginPipeline:
    """A :class:`~watchgate.hooks.MessageHooks` running the configured plugins per upstream."""

    hook_name = "plugins"

    def __init__(self, config: GatewayConfig) -> None:
        source = config.source
        self._setup_dir = Path(source).resolve().parent if source else None
        self._shared: dict[str, dict[str, Any]] = {}
        self.plugins: dict[str, list[ResolvedPlugin]] = {
            u.name: resolve(config.plugins, u.plugins) for u in config.proxy.upstreams
        }
        self._plans = {name: self._plan(name, plugins) for name, plugins in self.plugins.items()}
        self._default = self._plan("*", resolve(config.plugins, ()))  # a server added by a reload

    @property
    def empty(self) -> bool:
        return all(plan.empty for plan in self._plans.values())

    def instances(self, upstream: str) -> list[Plugin]:
        """The plugin objects that run for ``upstream``, in running order."""
        return list(self._plans.get(upstream, self._default).plugins)

    def _plan(self, upstream: str, plugins: list[ResolvedPlugin]) -> _Plan:
        plan = _Plan()
        for resolved in plugins:
            setup = PluginSetup(self._setup_dir, self._shared.setdefault(resolved.name, {}))
            try:
                plugin = resolved.cls(resolved.config, mode=resolved.mode, setup=setup)
            except Exception as exc:
                raise PluginLoadError(
                    f"plugin {resolved.name!r} could not start for {upstream!r}: {type(exc).__name__}: {exc}"
                ) from exc
            plan.plugins.append(plugin)
            for stage, method in _METHODS.items():
                if getattr(type(plugin), method) is getattr(Plugin, method):
                    continue  # not implemented: never called, costs nothing
                fn = getattr(plugin, method)
                step = _Step(
                    name=resolved.name,
                    plugin=plugin,
                    fn=fn,
                    is_async=inspect.iscoroutinefunction(fn),
                    timeout=resolved.timeout,
                    audit_only=resolved.mode == "audit_only",
                    fail_closed=plugin.fail_closed,
                    allowed=Decision(resolved.name, stage, "allow"),
                )
                getattr(plan, stage).append(step)
        return plan

    # --- the four hooks -----------------------------------------------------------------------
    async def on_request(self, ctx: CallContext, msg: Message) -> Message:
        steps = self._plans.get(ctx.upstream, self._default).request
        if not steps:
            return msg
        message = PluginMessage(ctx.method, "request", params=jsonrpc.load(msg.params))
        pctx = PluginContext(
            ctx.server, ctx.upstream, ctx.method, ctx.name, ctx.public_name, ctx.client_id, ctx
        )
        denial, changed = await self._apply(steps, message, pctx, "request")
        if denial is not None:
            raise PolicyDenied(denial.plugin, denial.reason or "denied")
        return msg.with_params(jsonrpc.raw(message.params)) if changed else msg

    async def on_response(self, ctx: CallContext, msg: Message) -> Message:
        steps = self._plans.get(ctx.upstream, self._default).response
        if not steps:
            return msg
        is_error = msg.error is not UNSET
        message = PluginMessage(ctx.method, "response")
        if is_error:
            message.error = jsonrpc.load(msg.error)
        else:
            message.result = jsonrpc.load(msg.result)
        pctx = PluginContext(
            ctx.server, ctx.upstream, ctx.method, ctx.name, ctx.public_name, ctx.client_id, ctx
        )
        denial, changed = await self._apply(steps, message, pctx, "response")
        if denial is not None:
            return error_response(ctx.request_id, PolicyDenied(denial.plugin, denial.reason or "denied"))
        if not changed:
            return msg
        if is_error:
            return msgspec.structs.replace(msg, error=jsonrpc.raw(message.error))
        return msg.with_result(jsonrpc.raw(message.result))

    async def on_notification(self, upstream: str, server: str | None, msg: Message) -> Message | None:
        steps = self._plans.get(upstream, self._default).notification
        if not steps:
            return msg
        method = msg.method if isinstance(msg.method, str) else ""
        message = PluginMessage(method, "notification", params=jsonrpc.load(msg.params))
        pctx = PluginContext(server, upstream, method)
        denial, changed = await self._apply(steps, message, pctx, "notification")
        if denial is not None:
            return None
        return msg.with_params(jsonrpc.raw(message.params)) if changed else msg

    async def on_list(
        self, upstream: str, server: str | None, kind: str, items: list[dict[str, Raw]]
    ) -> list[dict[str, Raw]]:
        steps = self._plans.get(upstream, self._default).list
        if not steps:
            return items
        decoded: list[dict[str, Any]] = [
            {key: msgspec.json.decode(value) for key, value in item.items()} for item in items
        ]
        current = decoded
        kind_info = LIST_KINDS.get(kind)
        pctx = PluginContext(server, upstream, kind_info.method if kind_info else kind)
        for step in steps:
            pctx.config = step.plugin.config
            result = await self._run(step, (kind, current, pctx), [trio.current_time()])
            if isinstance(result, _Failed) or not _is_list(result):
                reason = (
                    result.reason if isinstance(result, _Failed) else "returned something other than a list"
                )
                if step.fail_closed and not step.audit_only:
                    _log.error("[%s] plugin %s %s; the %s list is hidden", upstream, step.name, reason, kind)
                    return []
                _log.error("[%s] plugin %s %s on the %s list; ignored", upstream, step.name, reason, kind)
                continue
            if result is current:
                continue
            removed = _names(kind, current) - _names(kind, result)
            if step.audit_only:
                _log.info(
                    "[%s] plugin %s would change the %s list (hide %s)",
                    upstream,
                    step.name,
                    kind,
                    sorted(removed),
                )
                continue
            if removed:
                _log.info(
                    "[%s] plugin %s hides %s: %s", upstream, step.name, kind, ", ".join(sorted(removed))
                )
            current = result
        if current is decoded:
            return items
        return [{key: jsonrpc.raw(value) for key, value in item.items()} for item in current]

    async def on_instructions(self, upstream: str, server: str | None, text: str) -> str | None:
        """A server's ``instructions`` reach the model like a tool description: pinned like a tool
        (the list stage, kind ``instructions``) and checked like a response's content. None: held
        back (denied, or changed since approved)."""
        pseudo = {"name": jsonrpc.raw(INSTRUCTIONS), "description": jsonrpc.raw(text)}
        items = await self.on_list(upstream, server, "instructions", [pseudo])
        if not items:
            return None
        current = jsonrpc.load(items[0].get("description", UNSET))
        if not isinstance(current, str):
            return None
        steps = self._plans.get(upstream, self._default).response
        if not steps:
            return current
        message = PluginMessage("initialize", "response")
        message.result = {"instructions": current}
        denial, changed = await self._apply(
            steps, message, PluginContext(server, upstream, "initialize"), "response"
        )
        if denial is not None:
            _log.warning("[%s] its instructions are held back: %s", upstream, denial.reason)
            return None
        result = message.result if changed else {"instructions": current}
        held = result.get("instructions") if isinstance(result, dict) else None
        return held if isinstance(held, str) else None

    # --- running plugins ----------------------------------------------------------------------
    async def _apply(
        self, steps: list[_Step], message: PluginMessage, pctx: PluginContext, stage: Stage
    ) -> tuple[Decision | None, bool]:
        """Run the checks in order: an enforced denial (which ends the run) and whether the body
        was changed (the changes are applied to ``message``)."""
        decisions = pctx.call.decisions if pctx.call is not None else None
        changed = False
        clock = [trio.current_time()]  # one reading per plugin, shared between neighbours
        for step in steps:
            pctx.config = step.plugin.config
            verdict = await self._run(step, (message, pctx), clock)
            if verdict is ALLOW:
                if decisions is not None:
                    decisions.append(step.allowed)
                continue
            decision = _decision(step, stage, verdict)
            if decisions is not None:
                decisions.append(decision)
            _log_decision(decision, pctx)
            if not decision.enforced or decision.action == "allow":
                continue
            if decision.action != "modify":
                return decision, changed
            _set_body(message, verdict.body)
            changed = True
        return None, changed

    async def _run(self, step: _Step, args: tuple[Any, ...], clock: list[float]) -> Any:
        """The plugin's answer, or ``_Failed`` when it raised or ran past its timeout.

        ``clock[0]`` is the time the plugin started; it is left at the time it ended."""
        try:
            if step.is_async:
                with trio.move_on_after(step.timeout) as scope:
                    answer = await step.fn(*args)
                if scope.cancelled_caught:
                    return _Failed(f"did not answer within {step.timeout:g} s")
            else:
                answer = step.fn(*args)
        except Exception as exc:
            _log.exception("plugin %s raised", step.name)
            return _Failed(f"failed ({type(exc).__name__})")
        finally:
            started, clock[0] = clock[0], trio.current_time()
        if clock[0] - started > step.timeout:
            return _Failed(f"took longer than its timeout of {step.timeout:g} s")
        return answer


def _decision(step: _Step, stage: Stage, verdict: Any) -> Decision:
    enforce = not step.audit_only
    if isinstance(verdict, Allow):
        return Decision(step.name, stage, "allow", verdict.note)
    if isinstance(verdict, Deny):
        return Decision(step.name, stage, "deny", verdict.reason, enforce)
    if isinstance(verdict, Modify):
        return Decision(step.name, stage, "modify", verdict.reason, enforce)
    if isinstance(verdict, _Failed):
        return Decision(
            step.name, stage, "error", f"the plugin {verdict.reason}", enforce and step.fail_closed
        )
    _log.error("plugin %s returned %r, not allow/deny/modify", step.name, type(verdict).__name__)
    return Decision(
        step.name, stage, "error", "the plugin returned an invalid verdict", enforce and step.fail_closed
    )


def _set_body(message: PluginMessage, body: Any) -> None:
    if message.stage in ("request", "notification"):
        message.params = body
    elif message.error is not None:
        message.error = body
    else:
        message.result = body


_NAMED_METHODS: Final = frozenset({"tools/call", "prompts/get"})


def _log_decision(decision: Decision, pctx: PluginContext) -> None:
    """One line per decision, naming the tool or prompt; never a resource's URI, which can carry
    the very secret the plugin just took out (``resources/read https://…?access_key=…``)."""
    name = (pctx.name or "") if pctx.method in _NAMED_METHODS else ""
    if decision.action == "allow":
        _log.info(
            "[%s] plugin %s flags %s %s: %s",
            pctx.upstream,
            decision.plugin,
            pctx.method,
            name,
            decision.reason,
        )
        return
    verb = {"deny": "denied", "modify": "changed", "error": "failed on"}[decision.action]
    if not decision.enforced:
        verb = f"would have {verb} (not enforced)"
    level = logging.INFO if decision.action == "modify" else logging.WARNING
    _log.log(
        level,
        "[%s] plugin %s %s the %s of %s %s: %s",
        pctx.upstream,
        decision.plugin,
        verb,
        decision.stage,
        pctx.method,
        name,
        decision.reason,
    )


def _is_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _names(kind: str, items: list[dict[str, Any]]) -> set[str]:
    member = LIST_KINDS[kind].field if kind in LIST_KINDS else "name"
    return {str(item.get(member)) for item in items}
