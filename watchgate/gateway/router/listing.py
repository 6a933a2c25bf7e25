"""Requests the gateway makes of an upstream on its own account (lists, setLevel, unsubscribe),
through the upstream actor's mailbox like any other request."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import msgspec

from actors import AskTimeout
from watchgate.errors import JsonRpcError
from watchgate.gateway.messages import InternalRequest
from watchgate.gateway.ports import UpstreamPort
from watchgate.protocol.catalog import LIST_KINDS, Item, decode_page

MAX_PAGES = 1000
_log = logging.getLogger("watchgate.router")


async def fetch_all(actor: UpstreamPort, key: str, timeout: float) -> list[Item]:
    """Every page of one list, following the upstream's cursors (a repeated cursor ends it)."""
    kind = LIST_KINDS[key]
    items: list[Item] = []
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        params = {"cursor": cursor} if cursor else {}
        result: msgspec.Raw = await actor.ask(partial(InternalRequest, kind.method, params), timeout=timeout)
        page, cursor = decode_page(result, key)
        items.extend(page)
        if cursor is None or cursor in seen:
            break
        seen.add(cursor)
    return items


async def call_quietly(server: str, actor: UpstreamPort, method: str, params: Any) -> None:
    """Fire and log: nobody waits on the answer, a failure is worth a warning, not an error."""
    try:
        await actor.ask(partial(InternalRequest, method, params), timeout=actor.config.request_timeout)
    except (JsonRpcError, AskTimeout) as exc:
        _log.warning("[%s] %s failed: %s", server, method, exc)
