"""Tools that run only as MCP tasks (``execution.taskSupport: required``), left out of the lists.

The gateway offers its clients no MCP tasks, so listing such a tool would promise calls that
always fail; a call to one is an unknown name. Said once per server in the log, not at every
re-list.
"""

from __future__ import annotations

import logging

import msgspec

from watchgate.protocol.catalog import Item, requires_task

__all__ = ["TaskOnlyTools"]

_log = logging.getLogger("watchgate.router")


class TaskOnlyTools:
    def __init__(self) -> None:
        self._said: dict[str, list[str]] = {}  # per server: the tools left out, as logged

    def without(self, server: str, items: list[Item]) -> list[Item]:
        """Tools that run only as MCP tasks are left out (calls to them are unknown names): the
        gateway offers clients no tasks, so listing them would promise calls that always fail."""
        kept: list[Item] = []
        left_out: list[str] = []
        for item in items:
            if requires_task(item):
                left_out.append(_tool_name(item))
            else:
                kept.append(item)
        if left_out and self._said.get(server) != left_out:  # said once, not at every re-list
            self._said[server] = left_out
            _log.info(
                "[%s] left out %s: %s only as an MCP task, which Watchgate does not pass through",
                server,
                ", ".join(left_out),
                "it runs" if len(left_out) == 1 else "they run",
            )
        return kept


def _tool_name(item: Item) -> str:
    try:
        return repr(msgspec.json.decode(item["name"]))
    except (KeyError, msgspec.DecodeError):
        return "a tool"
