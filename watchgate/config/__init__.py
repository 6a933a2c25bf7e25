"""Watchgate's configuration: the public face of ``schema`` (the structs and their rules),
``load`` (YAML text to a checked config, every problem placed) and ``yamlsource`` (YAML with
every value's place).

``from watchgate.config import load_config, ConfigError`` is the API other code and plugins use;
the modules behind it are free to move.
"""

from watchgate.config.load import load_config, parse_config
from watchgate.config.schema import (
    DEFAULT_SINGLE_NAME,
    SERVER_NAME_RE,
    AuditConfig,
    AuditSinkConfig,
    AuthConfig,
    BackoffConfig,
    GatewayConfig,
    LimitsConfig,
    LoggingConfig,
    LogLevel,
    PluginConfig,
    ProxyConfig,
    Restart,
    SandboxConfig,
    TlsConfig,
    Transport,
    UpstreamConfig,
)
from watchgate.errors import ConfigError, ConfigProblem

__all__ = [
    "DEFAULT_SINGLE_NAME",
    "SERVER_NAME_RE",
    "AuditConfig",
    "AuditSinkConfig",
    "AuthConfig",
    "BackoffConfig",
    "ConfigError",
    "ConfigProblem",
    "GatewayConfig",
    "LimitsConfig",
    "LogLevel",
    "LoggingConfig",
    "PluginConfig",
    "ProxyConfig",
    "Restart",
    "SandboxConfig",
    "TlsConfig",
    "Transport",
    "UpstreamConfig",
    "load_config",
    "parse_config",
]
