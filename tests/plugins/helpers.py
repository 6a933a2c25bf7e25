"""Building gateways with plugins for the plugin tests: configs, servers with rich tool lists."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import yaml

from tests.gateway.fakes import Client, FakeServer, FakeSession, running_daemon
from watchgate.config import GatewayConfig, parse_config
from watchgate.gateway.tree import Gateway


def config_with(
    *names: str,
    plugins: list[dict[str, Any]] | None = None,
    per_server: dict[str, list[dict[str, Any]]] | None = None,
    single: bool = False,
    **upstream_keys: Any,
) -> GatewayConfig:
    """A config for fake upstreams with a global ``plugins:`` list and per-server overrides."""
    upstreams: list[dict[str, Any]] = []
    for name in names:
        entry: dict[str, Any] = {"name": name, "command": ["fake"], **upstream_keys}
        if per_server and name in per_server:
            entry["plugins"] = per_server[name]
        upstreams.append(entry)
    if single:
        assert len(upstreams) == 1
        upstreams[0].pop("name")
    document: dict[str, Any] = {"proxy": {"startup_wait": 15, "upstreams": upstreams}}
    if plugins is not None:
        document["plugins"] = plugins
    return parse_config(yaml.safe_dump(document))


class RichServer(FakeServer):
    """A fake server whose tools carry descriptions and schemas, changeable while it runs."""

    def __init__(
        self, name: str, *, definitions: dict[str, dict[str, Any]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(name, **kwargs)
        self.definitions = dict(definitions or {})

    async def _result(self, session: FakeSession, method: str, params: dict[str, Any]) -> Any:
        if method == "tools/list":
            tools = [
                {"name": n, "inputSchema": {"type": "object"}, **self.definitions.get(n, {})}
                for n in self.tools
            ]
            return self._page("tools", tools, params)
        return await super()._result(session, method, params)


def tool_returning(text: str) -> Any:
    async def tool(session: FakeSession, args: dict[str, Any]) -> Any:
        return {"content": [{"type": "text", "text": text}]}

    return tool


async def echo_args(session: FakeSession, args: dict[str, Any]) -> Any:
    """Answers with the arguments it received, as JSON text and as structured content."""
    import json

    return {"content": [{"type": "text", "text": json.dumps(args)}], "structuredContent": args}


@asynccontextmanager
async def gateway_with_hooks(
    config: Any, *servers: FakeServer, hooks: Any = None, extra_hooks: Any = (), deadline: float = 600
) -> AsyncIterator[tuple[Gateway, Callable[[], Awaitable[Client]]]]:
    """``running_daemon`` of the gateway fakes, with the gateway's message hooks given."""
    options = {"hooks": hooks, "extra_hooks": extra_hooks}
    async with running_daemon(config, *servers, deadline=deadline, **options) as running:
        yield running


def build(
    name: str, config: dict[str, Any] | None = None, *, mode: str | None = None, config_dir: Any = None
) -> Any:
    """One plugin object, built the way the pipeline builds it."""
    import msgspec

    from watchgate.plugins.api import PluginSetup
    from watchgate.plugins.registry import load_class

    cls = load_class(name)
    return cls(
        msgspec.convert(config or {}, cls.Config), mode=mode or cls.modes[0], setup=PluginSetup(config_dir)
    )


def request(
    method: str, params: Any, *, server: str | None = "fs", name: str | None = None
) -> tuple[Any, Any]:
    """A (message, context) pair for ``check_request``."""
    from watchgate.plugins.api import PluginContext, PluginMessage

    return PluginMessage(method, "request", params=params), PluginContext(
        server, server or "default", method, name
    )


def response(method: str, result: Any, *, server: str | None = "fs", error: Any = None) -> tuple[Any, Any]:
    from watchgate.plugins.api import PluginContext, PluginMessage

    message = PluginMessage(method, "response", result=None if error is not None else result, error=error)
    return message, PluginContext(server, server or "default", method)


def listing(server: str | None = "fs") -> Any:
    from watchgate.plugins.api import PluginContext

    return PluginContext(server, server or "default", "tools/list")
