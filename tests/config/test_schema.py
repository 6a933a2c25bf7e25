"""Defaults, value constraints, transport rules and unknown keys."""

from __future__ import annotations

import os
import textwrap

import msgspec
import pytest

from watchgate.config import (
    BackoffConfig,
    GatewayConfig,
    LoggingConfig,
    ProxyConfig,
    SandboxConfig,
    Transport,
    UpstreamConfig,
    parse_config,
)
from watchgate.errors import ConfigError, ConfigProblem


def problems(text: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text))
    return info.value.problems


def one_upstream(*lines: str) -> str:
    """A single-server document; ``lines`` are the keys of the upstream, from line 3 on."""
    return "proxy:\n  upstream:\n" + "".join(f"    {line}\n" for line in lines)


def test_defaults() -> None:
    config = parse_config(one_upstream("command: [srv]"))
    assert config.proxy.startup_wait == 15
    assert config.logging == LoggingConfig(level="info")
    assert config.source is None
    [u] = config.proxy.upstreams
    assert u.transport is Transport.STDIO
    assert (u.env, u.cwd, u.url, u.headers) == ({}, os.getcwd(), None, {})  # no file: its folder is here
    assert (u.restart, u.max_restarts, u.within_seconds, u.reset_after) == (
        "permanent",
        5,
        60,
        60,
    )
    assert (u.startup_timeout, u.request_timeout, u.shutdown_timeout) == (30, 60, 5)
    assert (u.ping_interval, u.ping_timeout) == (30, 10)
    assert u.backoff == BackoffConfig(initial=0.5, max=30.0, multiplier=2.0, jitter=0.1)


def test_every_key_is_read() -> None:
    config = parse_config(
        textwrap.dedent(
            """\
            proxy:
              startup_wait: 0
              upstreams:
                - name: svc
                  transport: stdio
                  command: [/bin/srv]
                  env: {A: b}
                  cwd: /srv
                  restart: transient
                  max_restarts: 0
                  within_seconds: 1.5
                  backoff: {initial: 1, max: 1, multiplier: 1, jitter: 0}
                  reset_after: 2
                  startup_timeout: 3
                  request_timeout: 4
                  shutdown_timeout: 0.5
                - name: remote
                  transport: websocket
                  url: wss://example.org/mcp
                  headers: {Authorization: Bearer x}
                  restart: temporary
            logging: {level: debug}
            """
        )
    )
    assert config.proxy.startup_wait == 0
    assert config.logging.level == "debug"
    svc, remote = config.proxy.upstreams
    assert svc == UpstreamConfig(
        name="svc",
        command=("/bin/srv",),
        env={"A": "b"},
        cwd="/srv",
        restart="transient",
        max_restarts=0,
        within_seconds=1.5,
        backoff=BackoffConfig(initial=1, max=1, multiplier=1, jitter=0),
        reset_after=2,
        startup_timeout=3,
        request_timeout=4,
        shutdown_timeout=0.5,
        sandbox=SandboxConfig(),  # proxy.sandbox, off unless set
    )
    assert remote.transport is Transport.WEBSOCKET
    assert remote.sandbox is None
    assert remote.command == ()
    assert remote.url == "wss://example.org/mcp"
    assert remote.headers == {"Authorization": "Bearer x"}
    assert remote.restart == "temporary"


def test_structs_are_frozen_and_typed_as_documented() -> None:
    config = parse_config(one_upstream("command: [srv]"))
    assert isinstance(config, GatewayConfig)
    assert isinstance(config.proxy, ProxyConfig)
    with pytest.raises(AttributeError):
        config.proxy.startup_wait = 3  # type: ignore[misc]
    assert isinstance(config.proxy.upstreams, tuple)
    assert isinstance(config.proxy.upstreams[0].command, tuple)


def test_transport_values_are_strings() -> None:
    assert Transport("http") is Transport.HTTP
    assert f"{Transport.WEBSOCKET}" == "websocket"


@pytest.mark.parametrize(
    ("line", "path", "message"),
    [
        ("max_restarts: -1", "max_restarts", "expected an integer >= 0, got -1"),
        ("max_restarts: 1.5", "max_restarts", "expected an integer, got 1.5"),
        ("max_restarts: true", "max_restarts", "expected an integer, got true"),
        ("within_seconds: 0", "within_seconds", "expected a number > 0.0, got 0"),
        ("reset_after: -5", "reset_after", "expected a number > 0.0, got -5"),
        ("startup_timeout: 0", "startup_timeout", "expected a number > 0.0, got 0"),
        ("request_timeout: 0", "request_timeout", "expected a number > 0.0, got 0"),
        ("shutdown_timeout: 0", "shutdown_timeout", "expected a number > 0.0, got 0"),
        ("ping_interval: -1", "ping_interval", "expected a number >= 0.0, got -1"),
        ("ping_timeout: 0", "ping_timeout", "expected a number > 0.0, got 0"),
        ("request_timeout: soon", "request_timeout", 'expected a number, got "soon"'),
        ("backoff: {initial: 0}", "backoff.initial", "expected a number > 0.0, got 0"),
        ("backoff: {max: 0}", "backoff.max", "expected a number > 0.0, got 0"),
        ("backoff: {multiplier: 0.9}", "backoff.multiplier", "expected a number >= 1.0, got 0.9"),
        ("backoff: {jitter: -0.1}", "backoff.jitter", "expected a number >= 0.0, got -0.1"),
        ("backoff: {jitter: 1.1}", "backoff.jitter", "expected a number <= 1.0, got 1.1"),
        ("backoff: 3", "backoff", "expected a mapping, got 3"),
        (
            "restart: always",
            "restart",
            'expected one of permanent, temporary, transient, got "always"',
        ),
        ("transport: tcp", "transport", 'expected one of stdio, http, sse, websocket, got "tcp"'),
        ("env: [A]", "env", "expected a mapping, got a list"),
        ("env: {A: 1}", "env.A", "expected a string, got 1"),
        ("cwd: 5", "cwd", "expected a string or null, got 5"),
        ("command: {a: b}", "command", "expected a list, got a mapping"),
        ("command: [srv, 2]", "command[1]", "expected a string, got 2"),
    ],
)
def test_value_constraints(line: str, path: str, message: str) -> None:
    text = one_upstream(line) if line.startswith("command") else one_upstream("command: [s]", line)
    [problem] = problems(text)
    assert problem.path == f"proxy.upstream.{path}"
    assert problem.message == message
    assert problem.line == (3 if line.startswith("command") else 4)


def test_backoff_max_below_initial() -> None:
    [problem] = problems(one_upstream("command: [s]", "backoff: {initial: 5, max: 1}"))
    assert problem.path == "proxy.upstream.backoff.max"
    assert problem.message == "must be at least backoff.initial (5)"


def test_backoff_max_equal_to_initial_is_fine() -> None:
    config = parse_config(one_upstream("command: [s]", "backoff: {initial: 2, max: 2}"))
    assert config.proxy.upstreams[0].backoff.max == 2


def test_startup_wait_must_not_be_negative() -> None:
    [problem] = problems("proxy:\n  startup_wait: -1\n  upstream: {command: [s]}\n")
    assert (problem.path, problem.line) == ("proxy.startup_wait", 2)
    assert problem.message == "expected a number >= 0.0, got -1"


def test_logging_level_values() -> None:
    for level in ("debug", "info", "warning", "error"):
        config = parse_config(f"proxy: {{upstream: {{command: [s]}}}}\nlogging: {{level: {level}}}\n")
        assert config.logging.level == level
    [problem] = problems("proxy: {upstream: {command: [s]}}\nlogging: {level: loud}\n")
    assert (problem.path, problem.line) == ("logging.level", 2)
    assert problem.message == 'expected one of debug, error, info, warning, got "loud"'


# --- transports ----------------------------------------------------------------------------


def test_stdio_requires_a_command() -> None:
    [problem] = problems(one_upstream("env: {A: b}"))
    assert (problem.path, problem.line) == ("proxy.upstream.command", 2)
    assert problem.message == "the command is required for a stdio upstream"


@pytest.mark.parametrize("command", ["[]", '""', "'   '"])
def test_stdio_command_must_not_be_empty(command: str) -> None:
    [problem] = problems(one_upstream(f"command: {command}"))
    assert problem.path == "proxy.upstream.command"
    assert problem.message == "the command is empty"


@pytest.mark.parametrize("key", ["url: http://h/", "headers: {A: b}", "tls: {verify: false}"])
def test_stdio_forbids_url_and_headers(key: str) -> None:
    [problem] = problems(one_upstream("command: [s]", key))
    name = key.split(":")[0]
    assert (problem.path, problem.line) == (f"proxy.upstream.{name}", 4)
    assert problem.message == f"{name!r} is only for http, sse and websocket upstreams, not stdio"


def test_protocol_modern_is_for_stdio_servers() -> None:
    assert (
        parse_config(one_upstream("command: [s]", "protocol: modern")).proxy.upstreams[0].protocol == "modern"
    )
    [problem] = problems(one_upstream("transport: http", "url: http://h/mcp", "protocol: modern"))
    assert problem.path == "proxy.upstream.protocol"
    assert problem.message.startswith("'modern' is for stdio servers")


@pytest.mark.parametrize(
    ("transport", "url"),
    [("http", "http://localhost:8000/mcp"), ("http", "HTTPS://h/mcp"), ("websocket", "ws://h")],
)
def test_network_transports_accept_their_schemes(transport: str, url: str) -> None:
    config = parse_config(one_upstream(f"transport: {transport}", f"url: {url}"))
    assert config.proxy.upstreams[0].url == url
    assert config.proxy.upstreams[0].transport == transport


@pytest.mark.parametrize(
    ("transport", "url", "wanted"),
    [
        ("http", "ws://h/mcp", "http:// or https://"),
        ("http", "localhost:8000", "http:// or https://"),
        ("http", "http:///nohost", "http:// or https://"),
        ("websocket", "https://h/mcp", "ws:// or wss://"),
    ],
)
def test_network_transports_reject_other_schemes(transport: str, url: str, wanted: str) -> None:
    [problem] = problems(one_upstream(f"transport: {transport}", f"url: '{url}'"))
    assert (problem.path, problem.line) == ("proxy.upstream.url", 4)
    assert problem.message == f"must start with {wanted} when transport is {transport}, got {url!r}"


def test_network_transport_requires_url() -> None:
    [problem] = problems(one_upstream("transport: http"))
    assert (problem.path, problem.line) == ("proxy.upstream.url", 2)
    assert problem.message == "a url is required when transport is http"


def test_network_transport_forbids_command_env_and_cwd() -> None:
    found = problems(
        one_upstream("transport: websocket", "url: ws://h", "command: [s]", "env: {A: b}", "cwd: /")
    )
    assert [(p.path, p.line) for p in found] == [
        ("proxy.upstream.command", 5),
        ("proxy.upstream.env", 6),
        ("proxy.upstream.cwd", 7),
    ]
    assert found[0].message == "'command' is only for stdio upstreams, not websocket"


def test_bad_transport_does_not_cause_follow_on_transport_errors() -> None:
    found = problems(one_upstream("transport: grpc", "url: ftp://x"))
    assert [p.path for p in found] == ["proxy.upstream.transport"]


# --- unknown keys and structure -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "line", "message"),
    [
        (
            "proxy: {upstream: {command: [s]}}\nmetrics: {}\n",
            "metrics",
            2,
            "unknown key 'metrics' (expected one of: proxy, logging, audit, plugins, profiles, discovery, access, approvals, telemetry)",
        ),
        (
            "proxy: {upstream: {command: [s]}}\nloging: {}\n",
            "loging",
            2,
            "unknown key 'loging' (did you mean 'logging'?)",
        ),
        (
            "proxy:\n  upstream: {command: [s]}\n  startup_wiat: 3\n",
            "proxy.startup_wiat",
            3,
            "unknown key 'startup_wiat' (did you mean 'startup_wait'?)",
        ),
        (
            "proxy:\n  upstream:\n    command: [s]\n    comand: [t]\n",
            "proxy.upstream.comand",
            4,
            "unknown key 'comand' (did you mean 'command'?)",
        ),
        (
            "proxy:\n  upstream:\n    command: [s]\n    backoff:\n      inital: 1\n",
            "proxy.upstream.backoff.inital",
            5,
            "unknown key 'inital' (did you mean 'initial'?)",
        ),
        (
            "proxy: {upstream: {command: [s]}}\nlogging: {level: info, file: x}\n",
            "logging.file",
            2,
            "unknown key 'file' (expected one of: level)",
        ),
        (
            "proxy: {upstream: {command: [s]}}\nsource: x.yaml\n",
            "source",
            2,
            "unknown key 'source' (expected one of: proxy, logging, audit, plugins, profiles, discovery, access, approvals, telemetry)",
        ),
    ],
)
def test_unknown_keys_are_errors_naming_the_key(text: str, path: str, line: int, message: str) -> None:
    [problem] = problems(text)
    assert (problem.path, problem.line, problem.message) == (path, line, message)


def test_missing_proxy_section() -> None:
    [problem] = problems("logging: {level: info}\n")
    assert problem.path == "proxy"
    assert problem.message == "missing required section 'proxy'"


def test_proxy_without_upstreams() -> None:
    [problem] = problems("proxy:\n  startup_wait: 3\n")
    assert (problem.path, problem.line) == ("proxy", 1)
    assert "no upstream servers" in problem.message


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("proxy:\n", "proxy", "expected a mapping, got null"),
        ("proxy: [a]\n", "proxy", "expected a mapping, got a list"),
        (
            "proxy:\n  upstreams: []\n",
            "proxy.upstreams",
            "at least one upstream server is required",
        ),
        (
            "proxy:\n  upstreams: {a: b}\n",
            "proxy.upstreams",
            "expected a list of servers, got a mapping",
        ),
        (
            "proxy:\n  upstream: npx\n",
            "proxy.upstream",
            'expected a mapping describing one server, got "npx"',
        ),
        ("[proxy]\n", "", "expected a mapping of sections such as 'proxy', got a list"),
        (
            "proxy: {upstream: {command: [s]}}\nlogging: null\n",
            "logging",
            "expected a mapping, got null",
        ),
    ],
)
def test_wrong_shapes(text: str, path: str, message: str) -> None:
    [problem] = problems(text)
    assert (problem.path, problem.message) == (path, message)


def test_non_string_top_level_key() -> None:
    [problem] = problems("proxy: {upstream: {command: [s]}}\n3: x\n")
    assert (problem.path, problem.line) == ("3", 2)
    assert problem.message.startswith("unknown key 3")


def test_section_structs_reject_unknown_fields_themselves() -> None:
    with pytest.raises(msgspec.ValidationError, match="unknown field `nope`"):
        msgspec.convert({"nope": 1}, BackoffConfig)


def test_a_flood_of_problems_is_capped_per_section() -> None:
    keys = "".join(f"  junk{i}: 1\n" for i in range(150))
    found = problems("proxy:\n  upstream: {command: [s]}\n" + keys)
    assert len(found) == 100
    assert found[0].path == "proxy.junk0"
    upstream_keys = "".join(f"    junk{i}: 1\n" for i in range(150))
    found = problems("proxy:\n  upstream:\n    command: [s]\n" + upstream_keys)
    assert len(found) == 100
    assert {p.path.rsplit(".", 1)[0] for p in found} == {"proxy.upstream"}
