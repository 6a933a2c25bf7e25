"""What a plugin is: the class to subclass, what it is given, and what it answers.

A plugin implements any of four methods, each ``async def`` or a plain ``def`` (a plain one runs
inline and costs nothing extra; an async one runs under the plugin's timeout):

- ``check_request(message, ctx)``: a client request on its way upstream
  (``tools/call``, ``prompts/get``, ``resources/read|subscribe|unsubscribe``,
  ``completion/complete``); ``message.params`` holds the params, names already the upstream's own.
- ``check_response(message, ctx)``: the answer to such a request on its way to the client;
  ``message.result`` or, for an error, ``message.error``.
- ``check_notification(message, ctx)``: a notification from an upstream; ``message.params``.
- ``filter_list(kind, items, ctx)``: an upstream's whole ``tools``/``prompts``/``resources``/
  ``resourceTemplates`` list before clients can see it; returns the items to keep (the same list
  object when nothing changes, new dicts for changed items: never mutate an item in place).

The checks answer ``allow()``, ``deny(reason)`` or ``modify(new_body, reason)``. The payload is
decoded once per message and shared by every plugin of the pipeline: treat it as read-only and
return a changed copy with ``modify``. A reason must never contain the sensitive value itself.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

if TYPE_CHECKING:
    from watchgate.hooks import CallContext, Stage
    from watchgate.protocol.identity import Principal

__all__ = [
    "ALLOW",
    "Allow",
    "Deny",
    "Modify",
    "NoConfig",
    "Plugin",
    "PluginContext",
    "PluginMessage",
    "PluginSetup",
    "Verdict",
    "allow",
    "deny",
    "modify",
]


class Allow:
    """Let the message pass; a ``note`` is recorded with the decision (a flag, not a denial)."""

    __slots__ = ("note",)

    def __init__(self, note: str | None = None) -> None:
        self.note = note

    def __repr__(self) -> str:
        return f"allow({self.note!r})" if self.note else "allow()"


class Deny:
    """Refuse the message: -32010 to the client for requests and responses, dropped otherwise."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"deny({self.reason!r})"


class Modify:
    """Replace the message's body (params, result or error) with ``body``."""

    __slots__ = ("body", "reason")

    def __init__(self, body: Any, reason: str | None = None) -> None:
        self.body = body
        self.reason = reason

    def __repr__(self) -> str:
        return f"modify(..., {self.reason!r})"


Verdict = Allow | Deny | Modify
ALLOW = Allow()


def allow(note: str | None = None) -> Allow:
    return ALLOW if note is None else Allow(note)


def deny(reason: str) -> Deny:
    return Deny(reason)


def modify(body: Any, reason: str | None = None) -> Modify:
    return Modify(body, reason)


@dataclass(slots=True)
class PluginMessage:
    """One message, decoded once for the whole pipeline; later plugins see earlier changes."""

    method: str  # for a response: the method of the request it answers
    stage: Stage
    params: Any = None  # request and notification params
    result: Any = None  # a successful response's result
    error: Any = None  # an error response's error object

    @property
    def is_error(self) -> bool:
        return self.error is not None

    @property
    def body(self) -> Any:
        """What ``modify`` replaces: params, result, or the error object."""
        if self.stage in ("request", "notification"):
            return self.params
        return self.error if self.error is not None else self.result


@dataclass(slots=True)
class PluginContext:
    """Who and what a message is about. One per message, shared by the plugins that check it."""

    server: str | None  # the server's name in multi-server mode, None in single-server mode
    upstream: str  # the upstream's name, always
    method: str
    name: str | None = None  # the upstream's own tool/prompt name or resource URI, if any
    public_name: str | None = None  # the name as the client wrote it
    client_id: int | None = None  # None for notifications and lists (they are not one client's)
    call: CallContext | None = None  # requests and responses: the hooks' context (decisions so far)
    config: Any = None  # the config of the plugin being called (the same as its ``self.config``)

    @property
    def principal(self) -> Principal | None:
        """Who the calling client is (a request or response; None for notifications and lists)."""
        return self.call.principal if self.call is not None else None


class NoConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The config of a plugin that takes none: any key is an error."""


@dataclass(frozen=True)
class PluginSetup:
    """What a plugin may need besides its config when it is built."""

    config_dir: Path | None  # the folder of the config file, for relative paths (None: no file)
    shared: dict[str, Any] = field(default_factory=dict)  # one per plugin name, across servers


class Plugin:
    """Subclass this; override only the checks you need (the others are never called).

    Class attributes: ``Config``, a ``msgspec.Struct`` (with ``forbid_unknown_fields=True`` and
    defaults for every field) that the ``config:`` mapping is converted to at load time;
    ``modes``, the modes it supports, the first being the default; ``priority``, its default
    place in the pipeline (lower runs first); ``fail_closed``: an exception or timeout denies.
    One instance is built per upstream, with that server's merged config.
    """

    Config: ClassVar[type[Any]] = NoConfig
    modes: ClassVar[tuple[str, ...]] = ("block", "audit_only")
    priority: ClassVar[int] = 100
    fail_closed: ClassVar[bool] = True

    def __init__(self, config: Any, *, mode: str, setup: PluginSetup) -> None:
        self.config = config
        self.mode = mode
        self.setup = setup

    def check_request(self, message: PluginMessage, ctx: PluginContext) -> Verdict | Awaitable[Verdict]:
        return ALLOW

    def check_response(self, message: PluginMessage, ctx: PluginContext) -> Verdict | Awaitable[Verdict]:
        return ALLOW

    def check_notification(self, message: PluginMessage, ctx: PluginContext) -> Verdict | Awaitable[Verdict]:
        return ALLOW

    def filter_list(
        self, kind: str, items: list[dict[str, Any]], ctx: PluginContext
    ) -> list[dict[str, Any]] | Awaitable[list[dict[str, Any]]]:
        return items
