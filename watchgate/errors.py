"""The exception hierarchy users of Watchgate can catch.

Errors that end up on the wire are ``JsonRpcError`` subclasses, so the code that decides a
request's fate raises and one place turns the exception into the JSON-RPC error response.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from watchgate.protocol.jsonrpc import Message


class WatchgateError(Exception):
    """Base of every error Watchgate raises on purpose."""


class JsonRpcError(WatchgateError):
    """An error that is answered to the peer as a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_response(self, request_id: int | str | None) -> Message:
        from watchgate.protocol.jsonrpc import error_response  # the codec imports this module

        return error_response(request_id, self)


class UnknownName(JsonRpcError):
    """A tool, prompt, resource or server prefix that no running upstream owns (-32602)."""

    def __init__(self, kind: str, name: str, known_servers: list[str]) -> None:
        known = ", ".join(known_servers) or "none running"
        super().__init__(
            -32602,
            f"unknown {kind} {name!r} (known servers: {known})",
            {"kind": kind, "name": name, "knownServers": known_servers},
        )


class UpstreamUnavailable(JsonRpcError):
    """The upstream is not running or died while the request was in flight (-32003)."""

    def __init__(self, server: str, state: str, last_error: str | None) -> None:
        detail = f"; last error: {last_error}" if last_error else ""
        super().__init__(
            -32003,
            f"upstream server {server!r} is unavailable (state: {state}){detail}",
            {"server": server, "state": state, "lastError": last_error},
        )


class UpstreamTimeout(JsonRpcError):
    """The upstream did not answer within its request_timeout (-32001)."""

    def __init__(self, server: str, timeout: float) -> None:
        super().__init__(
            -32001,
            f"upstream server {server!r} did not answer within {timeout:g} s",
            {"server": server, "timeout": timeout},
        )


class PolicyDenied(JsonRpcError):
    """A plugin (or another message hook) refused the message (-32010).

    The reason says what was found and where, never the value itself: the error goes back to the
    client and into logs, and must not leak the secret it stopped.
    """

    def __init__(self, plugin: str, reason: str) -> None:
        super().__init__(
            -32010,
            f"blocked by plugin {plugin!r}: {reason}",
            {"plugin": plugin, "reason": reason},
        )
        self.plugin = plugin
        self.reason = reason


class UpstreamStartError(WatchgateError):
    """An upstream could not be started or failed its handshake; the supervisor decides what next."""


class UpstreamExited(WatchgateError):
    """An upstream's process or connection ended; the message names exit code and stderr tail."""


_REASON_PREFIXES = ("UpstreamExited: ", "UpstreamStartError: ")


def exit_reason(last_exit: str | None) -> str | None:
    """A supervisor exit reason for people: None for a clean stop, without our exception names."""
    if last_exit in (None, "normal", "shutdown"):
        return None
    for prefix in _REASON_PREFIXES:
        if last_exit.startswith(prefix):
            return last_exit[len(prefix) :]
    return last_exit
