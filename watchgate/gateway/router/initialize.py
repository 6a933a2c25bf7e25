"""What the gateway answers to ``initialize``: the union of its upstreams' capabilities."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from watchgate import __version__
from watchgate.gateway.messages import UpstreamReady


def initialize_result(
    ready: Sequence[UpstreamReady], version: str, *, multi_server: bool, prefixed: Collection[str] = ()
) -> dict[str, Any]:
    """``tools`` always (with listChanged: servers come and go); the rest when some upstream has
    it; instructions merged per server in multi-server mode, passed through with one server."""
    upstream_caps = [r.capabilities for r in ready]
    caps: dict[str, Any] = {"tools": {"listChanged": True}}
    if any("prompts" in c for c in upstream_caps):
        caps["prompts"] = {"listChanged": True}
    if any("resources" in c for c in upstream_caps):
        subscribe = any(
            isinstance(c.get("resources"), dict) and c["resources"].get("subscribe") for c in upstream_caps
        )
        caps["resources"] = {"subscribe": bool(subscribe), "listChanged": True}
    for plain in ("logging", "completions"):
        if any(plain in c for c in upstream_caps):
            caps[plain] = {}
    result: dict[str, Any] = {
        "protocolVersion": version,
        "capabilities": caps,
        "serverInfo": {"name": "watchgate", "title": "Watchgate MCP gateway", "version": __version__},
    }
    texts = [(r.server, r.instructions) for r in ready if r.instructions]
    if texts:
        result["instructions"] = (
            "\n\n".join(f"## Server {name!r} ({_named(name, prefixed)})\n{text}" for name, text in texts)
            if multi_server
            else texts[0][1]
        )
    return result


def _named(server: str, prefixed: Collection[str]) -> str:
    return f"tools prefixed {server}__" if server in prefixed else "tools under their own names"
