"""Watchgate's configuration as structs: every section, its defaults and its value rules.

The structs are frozen: the supervision tree shares one configuration between actors without
copying it. Loading them from YAML, with every problem placed, is ``load``.

A new top-level section is one struct plus one field on :class:`GatewayConfig`; the loader
converts every field of ``GatewayConfig`` it finds in the YAML by that field's type.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Any, Final, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from watchgate.errors import ConfigError, ConfigProblem
from watchgate.protocol.namespace import SERVER_NAME_RE

__all__ = [
    "DEFAULT_SINGLE_NAME",
    "SERVER_NAME_RE",
    "AccessMatch",
    "AccessRule",
    "AuditConfig",
    "AuditSinkConfig",
    "AuthConfig",
    "BackoffConfig",
    "ConfigError",
    "ConfigProblem",
    "DiscoveryConfig",
    "GatewayConfig",
    "HttpListenerConfig",
    "LimitsConfig",
    "ListenerTlsConfig",
    "LogLevel",
    "LoggingConfig",
    "PluginConfig",
    "ProxyConfig",
    "RateConfig",
    "Restart",
    "SandboxConfig",
    "SharedStateConfig",
    "TlsConfig",
    "Transport",
    "UpstreamConfig",
]

DEFAULT_SINGLE_NAME = "default"
NAME_RULE = "letters, digits and '-', starting with a letter, at most 32"
ENV_VAR = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")

Restart = Literal["permanent", "transient", "temporary"]
LogLevel = Literal["debug", "info", "warning", "error"]
Positive = Annotated[float, Meta(gt=0)]


class Transport(enum.StrEnum):
    STDIO = "stdio"
    HTTP = "http"  # Streamable HTTP, falling back to legacy HTTP+SSE by itself
    SSE = "sse"  # legacy HTTP+SSE (MCP 2024-11-05) only
    WEBSOCKET = "websocket"


URL_SCHEMES = {
    Transport.HTTP: ("http", "https"),
    Transport.SSE: ("http", "https"),
    Transport.WEBSOCKET: ("ws", "wss"),
}


class BackoffConfig(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Delay before restart n (0-based): min(max, initial * multiplier**n), plus jitter."""

    initial: Positive = 0.5
    max: Positive = 30.0
    multiplier: Annotated[float, Meta(ge=1)] = 2.0
    jitter: Annotated[float, Meta(ge=0, le=1)] = 0.1


class SandboxConfig(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """An OS sandbox for a stdio server (watchgate/sandbox.py, ADR-018)."""

    enabled: bool = False
    paths: tuple[str, ...] = ()  # folders it may read and write (the home directory is hidden)
    read_only: tuple[str, ...] = ()  # folders it may read
    network: bool = True
    tmp: Literal["private", "shared"] = "private"
    required: bool = True  # False: where bwrap cannot run, start unsandboxed (ps says so)
    hide: tuple[str, ...] = ()  # files and folders it must not see (the gateway adds its audit log)


_SIZE_RE: Final = re.compile(r"^\s*(\d+)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


class LimitsConfig(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """rlimits of a stdio server's process tree."""

    memory: int | str | None = None  # bytes, or "512M", "2G" (RLIMIT_DATA: heap and private mappings)
    cpu_seconds: Annotated[int, Meta(ge=1)] | None = None
    open_files: Annotated[int, Meta(ge=16)] | None = None
    processes: Annotated[int, Meta(ge=1)] | None = None

    @property
    def memory_bytes(self) -> int | None:
        return parse_size(self.memory) if self.memory is not None else None


def parse_size(value: int | str) -> int:
    """``512M`` → 536870912; ``ValueError`` for what is not a size."""
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"a size must be positive, got {value}")
        return value
    match = _SIZE_RE.match(value)
    if match is None:
        raise ValueError(f"expected a size such as 512M or 2G, got {value!r}")
    power: int = " kmgt".index((match[2] or " ").lower())
    return int(match[1]) << (10 * power)


class PluginConfig(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """One entry of a ``plugins:`` list: the global one, or one under an upstream.

    Keys left out are unset: globally that means the plugin's default; under an upstream it means
    "as the global entry of that name says" (``config`` is merged key by key over the global
    one). ``watchgate.plugins.registry`` checks the name, mode and config at load time.
    """

    name: str
    enabled: bool | UnsetType = UNSET
    priority: int | UnsetType = UNSET
    mode: str | UnsetType = UNSET
    timeout: Positive | UnsetType = UNSET
    config: dict[str, Any] | UnsetType = UNSET


class AuthConfig(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """How the gateway proves itself to a remote upstream: a bearer token, read at every connect
    from the environment or a file (so a rotated token needs a restart, not a reload), or OAuth
    2.1 (``watchgate auth login NAME``; tokens in a 0600 file). Never logged, shown in ``ps`` or
    written to the audit log."""

    type: Literal["bearer", "oauth"] = "bearer"
    token_env: str | None = None  # bearer
    token_file: str | None = None  # bearer
    scopes: tuple[str, ...] = ()  # oauth: asked for at login (else what the server names)
    client_id: str | None = None  # oauth: a pre-registered client
    client_secret_file: str | None = None  # oauth: its secret, if it has one
    client_metadata_url: str | None = None  # oauth: an https client-ID metadata document


class TlsConfig(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Which certificates a remote upstream may present: the system's trust store by default,
    ``ca_file`` (a PEM bundle) for a private CA, ``verify: false`` only for a test bench."""

    ca_file: str | None = None
    verify: bool = True


_ITEM_NAME: Final = re.compile(r"^[A-Za-z0-9_.-]{1,128}\Z")  # the spec's tool name characters


class ItemRules(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """What clients see of one server's tools (or prompts): the tool manager.

    Every key and glob names the server's *own* name. ``allow`` (globs; if given, only these)
    and ``deny`` (globs; never these; deny wins) hide items from lists and calls alike;
    ``rename`` shows a name as another (the old name no longer works); ``describe`` replaces a
    description. Pins and the audit log keep the server's own names."""

    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()
    rename: dict[str, str] = {}
    describe: dict[str, str] = {}

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for old, new in self.rename.items():
            if not _ITEM_NAME.match(new):
                raise ValueError(
                    f"rename: {new!r} (for {old!r}) is not a valid name: letters, digits, _ . - (1-128)"
                )
            if new in seen:
                raise ValueError(f"rename: {seen[new]!r} and {old!r} are both renamed to {new!r}")
            seen[new] = old

    @property
    def empty(self) -> bool:
        return self.allow is None and not self.deny and not self.rename and not self.describe


class ResourceRules(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """The tool manager for resources: ``allow``/``deny`` globs on URIs (templates are hidden by
    ``deny`` only) and ``describe`` by URI. URIs are addresses: they are not renamed."""

    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()
    describe: dict[str, str] = {}

    @property
    def empty(self) -> bool:
        return self.allow is None and not self.deny and not self.describe


class UpstreamConfig(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """One upstream MCP server and the policy its supervisor applies to it.

    After loading, ``command`` is already split, ``${VAR}``/``~`` are expanded and relative
    paths are absolute, so nothing downstream depends on the gateway's working directory.
    """

    name: str = DEFAULT_SINGLE_NAME
    transport: Transport = Transport.STDIO
    command: tuple[str, ...] = ()
    env: dict[str, str] = {}
    env_files: tuple[str, ...] = ()  # KEY=VALUE files read at every start (env wins over them)
    env_keyring: dict[str, str] = {}  # VAR: "service/username" in the OS keyring, read at every start
    pass_env: tuple[str, ...] = ()  # the gateway's variables a server also gets (beyond the minimal set)
    sandbox: SandboxConfig | None = None  # None: proxy.sandbox
    limits: LimitsConfig | None = None
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = {}
    auth: AuthConfig | None = None  # remote: a bearer token
    tls: TlsConfig = TlsConfig()  # remote: whom to trust
    # its names to clients as <name>__tool and <name>+uri: "auto" only with more than one server,
    # "always", or "never" (its names pass through; design.md §4)
    prefix: Literal["auto", "always", "never"] = "auto"
    # http: "auto" probes the 2026-07-28 era first and falls back to initialize; "legacy" never
    # probes. stdio: "auto" and "legacy" open with initialize; "modern" speaks 2026-07-28
    protocol: Literal["auto", "legacy", "modern"] = "auto"
    restart: Restart = "permanent"
    max_restarts: Annotated[int, Meta(ge=0)] = 5
    within_seconds: Positive = 60.0
    backoff: BackoffConfig = BackoffConfig()
    reset_after: Positive = 60.0
    startup_timeout: Positive = 30.0
    request_timeout: Positive = 60.0
    shutdown_timeout: Positive = 5.0
    ping_interval: Annotated[float, Meta(ge=0)] = 30.0  # probe an idle server this often; 0: never
    ping_timeout: Positive = 10.0  # no answer to the probe within this: hung, restart it
    max_timeouts: Annotated[int, Meta(ge=0)] = 3  # this many request timeouts in a row: hung; 0: never
    plugins: tuple[PluginConfig, ...] = ()  # overrides of the global plugins for this server
    # the tool manager: what clients see of its tools, prompts and resources
    tools: ItemRules = ItemRules()
    prompts: ItemRules = ItemRules()
    resources: ResourceRules = ResourceRules()


def check_listen(listen: str) -> str:
    """``HOST:PORT`` (``[::1]:8848`` for IPv6), or ValueError saying what is wrong."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen: expected HOST:PORT (e.g. 127.0.0.1:8848), got {listen!r}")
    return listen


class ListenerTlsConfig(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """The certificate the HTTP listener presents (PEM files); both or neither."""

    cert: str
    key: str


_SHA256_HEX: Final = re.compile(r"^[0-9a-f]{64}$")


class ListenerToken(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """One caller of the HTTP listener: its name, its groups, and its bearer token, given as the
    token's SHA-256 (hex; never the token itself in the config) or a 0600 file holding it."""

    name: str
    sha256: str | None = None
    token_file: str | None = None
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.sha256 is None) == (self.token_file is None):
            raise ValueError("give exactly one of sha256 and token_file")
        if self.sha256 is not None and not _SHA256_HEX.match(self.sha256):
            raise ValueError("sha256 must be 64 lower-case hex digits (sha256sum of the token)")
        if not self.name:
            raise ValueError("name must not be empty")


class ClaimNames(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    user: str = "sub"  # the claim that names the caller
    groups: str = "groups"  # the claim that lists its groups


class IntrospectionConfig(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Where opaque (non-JWT) access tokens are checked: the issuer's RFC 7662 endpoint, which
    the gateway calls as a client of its own (HTTP Basic with ``client_id`` and the secret in
    a 0600 file); answers are cached until the token's ``exp`` (at most ``cache`` seconds)."""

    url: str
    client_id: str
    client_secret_file: str
    cache: Annotated[float, Meta(ge=0, le=3600)] = 300.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("https://", "http://127.", "http://localhost", "http://[::1]")):
            raise ValueError("url must be https:// (http:// only on loopback): tokens travel in it")


class OAuthResourceConfig(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """The listener as an OAuth 2.1 resource server: JWT access tokens from ``issuer``."""

    issuer: str
    audience: str | None = None  # default: the listener's own URL (its resource)
    jwks_url: str | None = None  # default: from the issuer's metadata (RFC 8414, then OIDC)
    scopes: tuple[str, ...] = ()  # every one required (403 insufficient_scope otherwise)
    claims: ClaimNames = ClaimNames()
    leeway: Annotated[float, Meta(ge=0, le=300)] = 30.0  # seconds of clock skew forgiven
    introspection: IntrospectionConfig | None = None  # opaque tokens: asked of the issuer (RFC 7662)


class ListenerAuth(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Who may call the HTTP listener, each by name (the audit log and ``ps`` say who did what)."""

    tokens: tuple[ListenerToken, ...] = ()
    oauth: OAuthResourceConfig | None = None

    def __post_init__(self) -> None:
        names = [token.name for token in self.tokens]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"token names must be unique: {', '.join(twice)}")


class HttpListenerConfig(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """How clients reach the gateway over Streamable HTTP (design.md §5).

    Loopback by default; any other address needs ``token_file`` (a bearer token every request
    must carry), or the listener refuses to start. ``allowed_origins``: the browser origins that
    may call it (an ``Origin`` header naming any other gets 403: DNS rebinding); loopback origins
    are always allowed on a loopback listener."""

    listen: str = "127.0.0.1:8848"
    path: str = "/mcp"
    token_file: str | None = None
    auth: ListenerAuth | None = None  # named tokens, one per caller (token_file: one, unnamed)
    allowed_origins: tuple[str, ...] = ()
    tls: ListenerTlsConfig | None = None
    max_body: Annotated[int, Meta(ge=1024)] = 4 * 1024 * 1024  # bytes of one POST
    body_timeout: Positive = 10.0  # seconds a POST's body may take to arrive once its headers have
    max_sessions: Annotated[int, Meta(ge=1)] = 1024  # legacy sessions at once
    # legacy sessions of one client address at once (default: a quarter of max_sessions)
    max_sessions_per_peer: Annotated[int, Meta(ge=1)] | None = None
    session_idle_timeout: Positive = 3600.0  # a legacy session nobody used this long is ended

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"path must start with '/', got {self.path!r}")
        check_listen(self.listen)


class SharedStateConfig(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """What replicas share: ``redis`` (a ``redis://`` / ``rediss://`` / ``unix://`` URL of Redis
    or Valkey) keeps the rate-limit buckets of ``access`` rules there."""

    redis: str

    def __post_init__(self) -> None:
        if not self.redis.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis must be a redis://, rediss:// or unix:// URL")


class ProxyConfig(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    upstreams: tuple[UpstreamConfig, ...]
    # how clients reach `watchgate run`: stdio, or http (the listener of `http`)
    transport: Literal["stdio", "http"] = "stdio"
    http: HttpListenerConfig = HttpListenerConfig()
    startup_wait: Annotated[float, Meta(ge=0)] = 15.0
    sandbox: SandboxConfig = SandboxConfig()  # every stdio server's, unless it has its own
    state: SharedStateConfig | None = None  # shared by replicas (rate-limit buckets); else per process

    @property
    def multi_server(self) -> bool:
        """More than one upstream: ``prefix: auto`` servers are namespaced."""
        return len(self.upstreams) > 1

    @property
    def prefixed(self) -> frozenset[str]:
        """The servers whose tools, prompts and URIs clients see with the server's prefix."""
        multi = self.multi_server
        return frozenset(
            u.name for u in self.upstreams if u.prefix == "always" or (u.prefix == "auto" and multi)
        )


class LoggingConfig(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    level: LogLevel = "info"


class AuditSinkConfig(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """One extra output fed from the same records as the JSON Lines file (for a SIEM).

    csv and cef write to a file; syslog writes RFC 5424 lines to a file or datagrams to a local
    Unix socket such as ``/dev/log``. The rules live here so ``validate`` reports them.
    """

    type: Literal["csv", "cef", "syslog"]
    path: str | None = None
    socket: str | None = None

    def __post_init__(self) -> None:
        if self.path is not None and self.socket is not None:
            raise ValueError("give either 'path' or 'socket' for a sink, not both")
        if self.socket is not None and self.type != "syslog":
            raise ValueError(f"'socket' is only for syslog sinks; a {self.type} sink needs 'path'")
        if self.path is None and self.socket is None:
            raise ValueError("a sink needs 'path' (a file) or, for syslog, 'socket' (a Unix socket)")


class AuditConfig(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """The audit log (design.md §8). Relative paths are relative to the config file's
    folder; ``watchgate.audit.resolved_audit_config`` makes them absolute."""

    enabled: bool = True
    path: str = "watchgate-audit.jsonl"
    include_payloads: bool = False
    on_failure: Literal["block", "continue"] = "block"
    fsync: Literal["always", "interval", "never"] = "interval"
    fsync_interval: Positive = 1.0
    max_bytes: Annotated[int, Meta(ge=4096)] = 10 * 1024 * 1024
    keep: Annotated[int, Meta(ge=1)] = 10
    sinks: tuple[AuditSinkConfig, ...] = ()
    mailbox_size: Annotated[int, Meta(ge=1)] = 1024


class NameGlobs(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Globs on the names clients see (``github__get_*``): ``allow`` (only these, if given) and
    ``deny`` (never these; deny wins)."""

    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()


class DiscoveryConfig(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """How clients find tools: ``list`` (every tool in ``tools/list``) or ``search`` (two tools of
    the gateway's own, ``find_tools`` and ``call_tool``, plus those ``always`` names)."""

    mode: Literal["list", "search"] = "list"
    always: tuple[str, ...] = ()  # globs on public tool names listed in search mode too
    limit: Annotated[int, Meta(ge=1, le=50)] = 8  # how many find_tools answers by default


class AccessMatch(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Whom an access rule is for: every given key must hold (none given: everyone)."""

    user: str | None = None
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()  # any one of them
    #: claims of the caller's token: each must hold one of the values given (a list claim: contain it)
    claims: dict[str, str | tuple[str, ...]] = {}


class RateConfig(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """At most ``calls`` tools/calls in any ``per`` seconds (a token bucket)."""

    calls: Annotated[int, Meta(ge=1)]
    per: Positive = 60.0


class AccessRule(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """What callers matching ``match`` may do: the profile they get (forced: a profile a client
    picks can only narrow it), servers, tool and prompt globs, and rate limits."""

    match: AccessMatch = AccessMatch()
    profile: str | None = None
    servers: tuple[str, ...] | None = None
    tools: NameGlobs = NameGlobs()
    prompts: NameGlobs = NameGlobs()
    resources: NameGlobs = NameGlobs()  # globs on the URIs clients see
    rate: RateConfig | None = None  # per caller
    tool_rate: RateConfig | None = None  # per caller and tool
    concurrency: Annotated[int, Meta(ge=1)] | None = None  # tools/calls of one caller at once


class ProfileConfig(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """A named view of the gateway for a kind of client (``watchgate attach --profile NAME``):
    only these servers (all when not given), and of them only the tools and prompts the globs
    let through."""

    servers: tuple[str, ...] | None = None
    tools: NameGlobs = NameGlobs()
    prompts: NameGlobs = NameGlobs()
    resources: NameGlobs = NameGlobs()  # globs on the URIs clients see (reads, subscriptions, lists)
    discovery: DiscoveryConfig | None = None  # its own; else the config's


class TelemetryConfig(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """OpenTelemetry over OTLP/HTTP (``watchgate[otel]``): spans and metrics, never payloads."""

    otlp_endpoint: str  # e.g. http://127.0.0.1:4318 (the collector's OTLP/HTTP port)
    service_name: str = "watchgate"
    metrics_interval: Positive = 15.0  # seconds between metric exports

    def __post_init__(self) -> None:
        if not self.otlp_endpoint.startswith(("http://", "https://")):
            raise ValueError(f"otlp_endpoint must be an http:// or https:// URL, got {self.otlp_endpoint!r}")


def remember_seconds(remember: str) -> float:
    """``identity-for 8h`` -> 28800.0 (s, m, h or d; a bare number is seconds). Raises ValueError."""
    text = remember.removeprefix("identity-for").strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise ValueError(
            f"remember must be never, session or identity-for DURATION (like 8h, 30m, 3600), not {remember!r}"
        )
    return seconds


class ApprovalRule(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Tool calls held until a person approves them: those of ``tools`` (globs on the names
    clients call), on ``servers`` (all if not given), by callers matching ``match``."""

    tools: tuple[str, ...]
    servers: tuple[str, ...] | None = None
    match: AccessMatch = AccessMatch()
    timeout: Positive = 120.0  # nobody deciding by then denies the call
    remember: str = "never"  # never | session | identity-for DURATION
    ask: Literal["auto", "client", "console"] = "auto"

    def __post_init__(self) -> None:
        if self.remember not in ("never", "session"):
            if not self.remember.startswith("identity-for"):
                remember_seconds("")  # raises, naming the three forms
            remember_seconds(self.remember)


class GatewayConfig(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    proxy: ProxyConfig
    logging: LoggingConfig = LoggingConfig()
    audit: AuditConfig = AuditConfig()
    plugins: tuple[PluginConfig, ...] = ()
    profiles: dict[str, ProfileConfig] = {}  # name -> what a client that chose it sees
    discovery: DiscoveryConfig = DiscoveryConfig()  # list every tool, or let clients search
    access: tuple[AccessRule, ...] | None = None  # per caller, first match wins; none matching: nothing
    approvals: tuple[ApprovalRule, ...] = ()  # calls held for a person's approval, first match wins
    telemetry: TelemetryConfig | None = None  # OpenTelemetry: off unless given
    source: str | None = None  # not a YAML key: where the configuration was read from
