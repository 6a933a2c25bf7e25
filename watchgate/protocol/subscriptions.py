"""``subscriptions/listen`` as a 2026-07-28 client asks for it (spec ``basic/patterns/subscriptions``):
what of its filter the gateway honours, and which of the gateway's notifications each open
subscription gets, tagged with its id. Pure: the HTTP listener (one stream per subscription) and
the client actor (stdio, where every subscription shares the channel) do the I/O.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from watchgate.protocol import jsonrpc

__all__ = ["ACKNOWLEDGED", "SUBSCRIPTION_KEY", "Listens", "agreed_filter", "tagged"]

SUBSCRIPTION_KEY: Final = "io.modelcontextprotocol/subscriptionId"
ACKNOWLEDGED: Final = "notifications/subscriptions/acknowledged"
UPDATED: Final = "notifications/resources/updated"
#: filter flag -> the notification it lets through
FLAGS: Final = {
    "toolsListChanged": "notifications/tools/list_changed",
    "promptsListChanged": "notifications/prompts/list_changed",
    "resourcesListChanged": "notifications/resources/list_changed",
}


def agreed_filter(requested: Any) -> dict[str, Any]:
    """The part of the client's filter the gateway honours (unknown or malformed parts left out)."""
    if not isinstance(requested, dict):
        return {}
    agreed: dict[str, Any] = {flag: True for flag in FLAGS if requested.get(flag) is True}
    uris = requested.get("resourceSubscriptions")
    if isinstance(uris, list) and all(isinstance(uri, str) for uri in uris):
        agreed["resourceSubscriptions"] = list(dict.fromkeys(uris))
    return agreed


def tagged(method: str, params: dict[str, Any], subscription: int | str) -> bytes:
    """A notification as one subscription gets it: its id in ``_meta``."""
    meta = dict(params.get("_meta") or {})
    meta[SUBSCRIPTION_KEY] = subscription
    return jsonrpc.encode(jsonrpc.notification(method, {**params, "_meta": meta}))


def wanted(agreed: dict[str, Any], method: str, params: Any) -> bool:
    """Whether a subscription with filter ``agreed`` gets this notification."""
    if method == UPDATED:
        uri = params.get("uri") if isinstance(params, dict) else None
        return uri in agreed.get("resourceSubscriptions", ())
    return any(agreed.get(flag) for flag, flagged in FLAGS.items() if flagged == method)


class Listens:
    """The open subscriptions of one stdio client: their filters, and what each gets."""

    def __init__(self) -> None:
        self._open: dict[int | str, dict[str, Any]] = {}

    def add(self, subscription: int | str, agreed: dict[str, Any]) -> None:
        self._open[subscription] = agreed

    def ids(self) -> list[int | str]:
        return list(self._open)

    def uris(self) -> set[str]:
        """Every URI an open subscription asked for."""
        return {uri for agreed in self._open.values() for uri in agreed.get("resourceSubscriptions", ())}

    def remove(self, subscription: object) -> dict[str, Any] | None:
        return self._open.pop(subscription, None) if isinstance(subscription, int | str) else None

    def route(self, line: bytes) -> list[bytes]:
        """A broadcast line as the subscriptions get it: one tagged copy per subscription that
        asked for it; nothing for what none asked for."""
        try:
            msg = jsonrpc.decode(line)
        except jsonrpc.JsonRpcError:
            return []
        if not isinstance(msg.method, str):
            return []
        params = jsonrpc.load(msg.params) if msg.params is not msgspec.UNSET else {}
        params = params if isinstance(params, dict) else {}
        return [
            tagged(msg.method, params, subscription)
            for subscription, agreed in self._open.items()
            if wanted(agreed, msg.method, params)
        ]
