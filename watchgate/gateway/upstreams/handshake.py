"""The MCP ``initialize`` handshake a gateway does with each upstream server, as its client."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import msgspec
import trio

from watchgate import __version__
from watchgate.errors import UpstreamStartError
from watchgate.gateway.messages import UpstreamReady
from watchgate.gateway.upstreams.session import as_dict, describe_server
from watchgate.protocol import eras, jsonrpc
from watchgate.protocol.jsonrpc import Line

PROTOCOL_VERSION: Final = "2025-11-25"
# 2026-07-28: a stateless server, its discovery answered as an initialize (transports/modern/)
KNOWN_VERSIONS: Final = eras.LEGACY_VERSIONS | frozenset(eras.MODERN_VERSIONS)
_log = logging.getLogger("watchgate.upstream")


async def handshake(
    server: str,
    timeout: float,
    call: Callable[[str, Any], Awaitable[msgspec.Raw]],
    send: Callable[[Sequence[Line]], Awaitable[None]],
    stderr_tail: Sequence[str],
) -> UpstreamReady:
    """``initialize`` at the current protocol version, then ``notifications/initialized``.

    Raises `UpstreamStartError` saying why the server cannot be used: no answer within
    ``timeout`` (quoting its last stderr line), a malformed result, or a protocol version the
    gateway does not speak.
    """
    params = {
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {"sampling": {}, "elicitation": {}},
        "clientInfo": {"name": "watchgate", "version": __version__},
    }
    raw: msgspec.Raw | None = None
    with trio.move_on_after(timeout):
        raw = await call("initialize", params)
    if raw is None:
        reason = f"no answer to initialize within {timeout:g} s"
        if stderr_tail:
            reason += f"; stderr: {stderr_tail[-1]}"
        raise UpstreamStartError(reason)
    result = jsonrpc.load(raw)
    if not isinstance(result, dict):
        raise UpstreamStartError("initialize returned a result that is not an object")
    version = result.get("protocolVersion")
    if version not in KNOWN_VERSIONS:
        raise UpstreamStartError(f"unsupported protocol version {version!r}")
    await send([jsonrpc.encode_line(jsonrpc.notification("notifications/initialized"))])
    _log.info("[%s] ready: %s, protocol %s", server, describe_server(result), version)
    instructions = result.get("instructions")
    return UpstreamReady(
        server=server,
        capabilities=as_dict(result.get("capabilities")),
        server_info=as_dict(result.get("serverInfo")),
        instructions=instructions if isinstance(instructions, str) else None,
        protocol_version=version,
    )
