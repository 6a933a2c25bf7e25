"""Every exception Watchgate raises on purpose, in one tree (the style of httpx's ``_exceptions``).

```
WatchgateError                    catch this for "anything Watchgate refused or could not do"
├── JsonRpcError                  answered to the peer as a JSON-RPC error object (code, message, data)
│   ├── ParseError                -32700  the line is not JSON
│   ├── InvalidRequest            -32600  not a JSON-RPC message (carries the id it could salvage)
│   ├── UnknownName               -32602  no running upstream owns that tool, prompt or resource
│   ├── UpstreamTimeout           -32001  the upstream did not answer within request_timeout
│   ├── UpstreamUnavailable       -32003  the upstream is down, starting, failed or gone mid-call
│   ├── PolicyDenied              -32010  a plugin (or another message hook) refused the message
│   └── AuditUnavailable          -32011  the audit log cannot be written (on_failure: block)
├── ConfigError                   the configuration cannot be used; lists every ConfigProblem
├── YamlSyntaxError               the text is not one well-formed YAML document (becomes a ConfigProblem)
├── ConfigNotFound                no config file where the commands look for one
├── PluginLoadError               a plugin's class cannot be found or imported
├── UpstreamStartError            an upstream could not start or failed its handshake
│   └── UpstreamAuthError         OAuth toward a remote server failed, or it needs `watchgate auth login`
├── UpstreamExited                an upstream's process or connection ended
├── LineTooLong                   a peer sent more than the line limit without a newline
├── PeerGone                      the other side of a connection closed: nothing more reaches it
├── AuditLogInUse (also OSError)  another process writes this audit log
├── RuntimeDirUnsafe              the runtime directory could be someone else's
├── DaemonAlreadyRunning          `up` found a daemon answering on the socket
├── DaemonNotRunning              a command found no daemon to talk to
├── DaemonRefused                 the daemon would not take this connection, or never answered
├── ControlError                  the daemon refused a control request; the message says why
└── CannotListen                  the control socket cannot be created where it should be
```

What ends up on the wire is a ``JsonRpcError``: the code that decides a request's fate raises,
and ``watchgate.protocol.jsonrpc.error_response`` turns the exception into the error response.
Foreign exceptions (OS errors, trio-websocket, a library's own) are translated into this tree at
the edge that meets them; code above that edge catches only these. The actor runtime
(``actors.errors``) keeps its own small tree: it knows nothing of Watchgate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "AuditLogInUse",
    "AuditUnavailable",
    "CannotListen",
    "ConfigError",
    "ConfigNotFound",
    "ConfigProblem",
    "ControlError",
    "DaemonAlreadyRunning",
    "DaemonNotRunning",
    "DaemonRefused",
    "InvalidRequest",
    "JsonRpcError",
    "LineTooLong",
    "ParseError",
    "PeerGone",
    "PluginLoadError",
    "PolicyDenied",
    "RuntimeDirUnsafe",
    "UnknownName",
    "UpstreamExited",
    "UpstreamStartError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "WatchgateError",
    "YamlSyntaxError",
    "exit_reason",
]


class WatchgateError(Exception):
    """Base of every error Watchgate raises on purpose."""


# -- answered on the wire ---------------------------------------------------------------------


class JsonRpcError(WatchgateError):
    """An error that is answered to the peer as a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class ParseError(JsonRpcError):
    def __init__(self, detail: str) -> None:
        super().__init__(-32700, f"parse error: {detail}")


class InvalidRequest(JsonRpcError):
    """Carries the id we could salvage, so the error can still be correlated by the peer."""

    def __init__(self, reason: str, request_id: int | str | None = None) -> None:
        super().__init__(-32600, f"invalid request: {reason}")
        self.request_id = request_id


class UnknownName(JsonRpcError):
    """A tool, prompt, resource or server prefix that no running upstream owns (-32602)."""

    def __init__(
        self, kind: str, name: str, known_servers: list[str], *, refused_by: str = "gateway"
    ) -> None:
        known = ", ".join(known_servers) or "none running"
        super().__init__(
            -32602,
            f"unknown {kind} {name!r} (known servers: {known})",
            {"kind": kind, "name": name, "knownServers": known_servers},
        )
        self.kind, self.name = kind, name
        self.refused_by = refused_by  # what hid it: the gateway (no such name), tool_manager, profile

    def seen_by(self, known_servers: list[str]) -> UnknownName:
        """The same refusal naming only the servers the caller may see."""
        return UnknownName(self.kind, self.name, known_servers, refused_by=self.refused_by)


class UpstreamUnavailable(JsonRpcError):
    """The upstream is not running or died while the request was in flight (-32003)."""

    def __init__(self, server: str, state: str, last_error: str | None) -> None:
        last_error = exit_reason(last_error)  # for people: no exception class names
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


class AuditUnavailable(JsonRpcError):
    """The audit log cannot be written and ``audit.on_failure`` is ``block`` (-32011)."""

    def __init__(self, path: str, error: str) -> None:
        super().__init__(
            -32011,
            f"the audit log {path} cannot be written ({error}); "
            "requests are refused until it can (audit.on_failure: block)",
            {"path": path, "error": error},
        )


# -- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a configuration, placed so an editor can jump to it."""

    path: str
    line: int | None
    message: str
    source: str | None = None

    def __str__(self) -> str:
        if self.source:
            where = self.source if self.line is None else f"{self.source}:{self.line}"
        else:
            where = "" if self.line is None else f"line {self.line}"
        return ": ".join(part for part in (where, self.path, self.message) if part)


class ConfigError(WatchgateError):
    """The configuration cannot be used; ``problems`` lists everything found, in file order."""

    def __init__(self, problems: Iterable[ConfigProblem], source: str | None = None) -> None:
        self.source = source
        self.problems = [
            p if p.source is not None or source is None else replace(p, source=source) for p in problems
        ]
        super().__init__("\n".join(str(p) for p in self.problems))


class YamlSyntaxError(WatchgateError):
    """The text is not one well-formed YAML document; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class ConfigNotFound(WatchgateError):
    """No config file where the commands look for one (``-c``, the env, the usual places)."""


class PluginLoadError(WatchgateError):
    """A plugin's class cannot be found or imported."""


# -- upstreams and the wire ---------------------------------------------------------------------


class UpstreamStartError(WatchgateError):
    """An upstream could not be started or failed its handshake; the supervisor decides what next."""

    needs_login = False  # a person must run `watchgate auth login` first (OAuth's own error says so)


class UpstreamAuthError(UpstreamStartError):
    """OAuth toward a remote server failed (the message says how, never a token), or the server
    wants a person to log in first (``needs_login``: ``watchgate auth login NAME``)."""

    def __init__(self, message: str, *, needs_login: bool = False) -> None:
        super().__init__(message)
        self.needs_login = needs_login


class UpstreamExited(WatchgateError):
    """An upstream's process or connection ended; the message names exit code and stderr tail."""


class LineTooLong(WatchgateError):
    """A peer sent more than the line limit without a newline: a framing error, not a message."""


class PeerGone(WatchgateError):
    """The other side of a connection is closed (a broken pipe, a closed stream): nothing more
    can be written to it. Raised by the wire layer in place of trio's own errors."""


class AuditLogInUse(WatchgateError, OSError):
    """Another process writes this log: two chains in one file would look like tampering.

    An ``OSError`` too, so a writer that meets it while reopening treats it like any other
    unwritable log (-32011 under ``on_failure: block``)."""


# -- the daemon ---------------------------------------------------------------------------------


class RuntimeDirUnsafe(WatchgateError):
    """The runtime directory, or a file in it, could be someone else's: refused."""


class DaemonAlreadyRunning(WatchgateError):
    """``watchgate up`` found a daemon already answering on the socket."""


class DaemonNotRunning(WatchgateError):
    """A command found no daemon to talk to."""


class DaemonRefused(WatchgateError):
    """The daemon would not take this connection (another user's daemon), or never answered."""


class ControlError(WatchgateError):
    """The daemon refused the request; the message says why."""


class CannotListen(WatchgateError):
    """An address cannot be listened on: the daemon's socket, or the HTTP listener's address."""


_REASON_PREFIXES = ("UpstreamExited: ", "UpstreamStartError: ")


def exit_reason(last_exit: str | None) -> str | None:
    """A supervisor exit reason for people: None for a clean stop, without our exception names."""
    if last_exit in (None, "normal", "shutdown"):
        return None
    for prefix in _REASON_PREFIXES:
        if last_exit.startswith(prefix):
            return last_exit[len(prefix) :]
    return last_exit
