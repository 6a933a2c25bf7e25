"""``plugins:`` in the YAML: loading by name or dotted path, checks at load time with YAML paths,
per-server overrides merged by name, and the running order."""

from __future__ import annotations

import textwrap

import pytest

from tests.plugins.helpers import config_with
from watchgate.config import PluginConfig, parse_config
from watchgate.errors import ConfigError, ConfigProblem, PluginLoadError
from watchgate.plugins.registry import BUILTINS, DEFAULT_TIMEOUT, load_class, merge, resolve
from watchgate.plugins.secrets import SecretsConfig, SecretsPlugin
from watchgate.plugins.tool_access import ToolAccessPlugin

SAMPLE = "tests.plugins.sample_plugins"


def problems(text: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text))
    return info.value.problems


def test_no_plugins_is_the_default() -> None:
    config = config_with("a")
    assert config.plugins == () and config.proxy.upstreams[0].plugins == ()


def test_every_builtin_loads_by_name() -> None:
    for name in BUILTINS:
        cls = load_class(name)
        assert cls.__module__ == f"watchgate.plugins.{name}"


def test_entries_keep_only_what_was_written() -> None:
    config = parse_config(
        textwrap.dedent(
            """\
            proxy: {upstream: {command: [srv]}}
            plugins:
              - name: secrets
                mode: block
                priority: 5
                timeout: 0.5
                config: {kinds: [aws_access_key]}
              - name: pii
            """
        )
    )
    secrets, pii = config.plugins
    assert secrets == PluginConfig(
        name="secrets", mode="block", priority=5, timeout=0.5, config={"kinds": ["aws_access_key"]}
    )
    [resolved_secrets, resolved_pii] = resolve(config.plugins, ())
    assert (resolved_secrets.mode, resolved_secrets.priority, resolved_secrets.timeout) == ("block", 5, 0.5)
    assert resolved_secrets.config == SecretsConfig(kinds=("aws_access_key",))
    assert (resolved_pii.mode, resolved_pii.priority, resolved_pii.timeout) == ("redact", 50, DEFAULT_TIMEOUT)
    assert pii.enabled is not False


@pytest.mark.parametrize(
    ("text", "path", "line", "message"),
    [
        (
            """\
            proxy: {upstream: {command: [srv]}}
            plugins:
              - name: secrets
              - name: nope
            """,
            "plugins[1].name",
            4,
            "unknown plugin 'nope' (built-in: tool_access, path_guard, tool_pinning, secrets, pii, "
            "prompt_injection; others are named 'package.module:Class')",
        ),
        (
            """\
            proxy: {upstream: {command: [srv]}}
            plugins:
              - name: secrets
              - name: tool_access
                config:
                  allow: [read_*]
            """,
            "plugins[1].config.allow",
            6,
            "unknown key 'allow' (expected one of: tools, prompts, resources, strict_names, callers)",
        ),
        (
            """\
            proxy: {upstream: {command: [srv]}}
            plugins:
              - name: secrets
                config: {entropy_threshold: high}
            """,
            "plugins[0].config.entropy_threshold",
            4,
            'expected a number, got "high"',
        ),
        (
            """\
            proxy: {upstream: {command: [srv]}}
            plugins:
              - name: secrets
                config: {kinds: [aws_access_key, passwords]}
            """,
            "plugins[0].config.kinds[1]",
            4,
            "expected one of aws_access_key, aws_secret_key, github_token, gitlab_token, google_api_key, "
            'high_entropy, jwt, private_key, slack_token, slack_webhook, got "passwords"',
        ),
        (
            """\
            proxy: {upstream: {command: [srv]}}
            plugins:
              - name: tool_access
                mode: redact
            """,
            "plugins[0].mode",
            4,
            "the tool_access plugin's modes are block, audit_only; got 'redact'",
        ),
        (
            """\
            proxy: {upstream: {command: [srv]}}
            plugins:
              - name: pii
              - name: pii
            """,
            "plugins[1].name",
            4,
            "duplicate plugin 'pii' (also plugins[0])",
        ),
        (
            """\
            proxy: {upstream: {command: [srv]}}
            plugins:
              - name: pii
                enable: false
            """,
            "plugins[0].enable",
            4,
            "unknown key 'enable' (did you mean 'enabled'?)",
        ),
        (
            """\
            proxy: {upstream: {command: [srv]}}
            plugins:
              - name: pii
                timeout: 0
            """,
            "plugins[0].timeout",
            4,
            "expected a number > 0.0, got 0",
        ),
        (
            """\
            proxy: {upstream: {command: [srv]}}
            plugins:
              - name: path_guard
                config: {allow: [relative/**]}
            """,
            "plugins[0].config",
            4,
            "path globs must be absolute (start with /, ~ or **), got 'relative/**'",
        ),
    ],
)
def test_bad_plugin_entries_name_their_yaml_path(text: str, path: str, line: int, message: str) -> None:
    [problem] = problems(text)
    assert (problem.path, problem.line, problem.message) == (path, line, message)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (f"{SAMPLE}:Missing", f"'{SAMPLE}' has no 'Missing' (plugin '{SAMPLE}:Missing')"),
        (f"{SAMPLE}:NotAPlugin", f"'{SAMPLE}:NotAPlugin' is not a subclass of watchgate.plugins.Plugin"),
        ("no_such_package.plugins:X", "cannot import 'no_such_package.plugins' for plugin"),
        (":X", "unknown plugin ':X'"),
    ],
)
def test_dotted_paths_that_do_not_load(name: str, message: str) -> None:
    [problem] = problems(f"proxy: {{upstream: {{command: [srv]}}}}\nplugins:\n  - name: '{name}'\n")
    assert problem.path == "plugins[0].name"
    assert message in problem.message


def test_a_module_that_fails_to_import_is_reported(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "exploding_plugin.py"  # type: ignore[operator]
    package.write_text("raise ValueError('kaboom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginLoadError, match="importing 'exploding_plugin' failed: ValueError: kaboom"):
        load_class("exploding_plugin:Plugin")


def test_a_third_party_plugin_by_dotted_path() -> None:
    config = config_with("a", plugins=[{"name": f"{SAMPLE}:Recorder", "config": {"tag": "x"}}])
    [resolved] = resolve(config.plugins, ())
    assert resolved.cls.__name__ == "Recorder" and resolved.priority == 100 and resolved.mode == "block"


def test_upstream_overrides_are_checked_with_their_own_path() -> None:
    found = problems(
        """\
        plugins:
          - name: tool_access
            config: {tools: {deny: [rm]}, strict_names: maybe}
        proxy:
          upstreams:
            - name: fs
              command: [srv]
              plugins:
                - name: tool_access
                  mode: block
                  config: {prompts: {allow: 3}}
                - name: secrets
                  config: {nope: 1}
                - name: missing
            - name: git
              command: [srv]
              plugins:
                - name: tool_access
                  config: {tools: {deny: [push]}}
        """
    )
    assert [(p.path, p.line) for p in found] == [
        ("plugins[0].config.strict_names", 3),
        ("proxy.upstreams[0].plugins[0].config.prompts.allow", 11),
        ("proxy.upstreams[0].plugins[1].config.nope", 13),
        ("proxy.upstreams[0].plugins[2].name", 14),
    ]


def test_merge_takes_what_the_override_sets_and_merges_config_by_key() -> None:
    base = PluginConfig(name="secrets", mode="block", priority=3, config={"kinds": ["jwt"], "base64": False})
    override = PluginConfig(name="secrets", priority=7, config={"base64": True})
    merged = merge(base, override)
    assert merged == PluginConfig(
        name="secrets", mode="block", priority=7, config={"kinds": ["jwt"], "base64": True}
    )
    assert merge(None, override) is override
    assert merge(base, PluginConfig(name="secrets", enabled=False)).enabled is False


def test_per_server_plugins_are_merged_by_name() -> None:
    config = config_with(
        "fs",
        "git",
        "web",
        plugins=[
            {"name": "tool_access", "config": {"tools": {"deny": ["rm"]}}},
            {"name": "secrets", "mode": "block"},
            {"name": "pii"},
        ],
        per_server={
            "fs": [
                {"name": "tool_access", "config": {"prompts": {"deny": ["p"]}}},
                {"name": "pii", "enabled": False},
            ],
            "git": [{"name": f"{SAMPLE}:Recorder", "priority": 1}, {"name": "secrets", "mode": "redact"}],
        },
    )
    fs, git, web = (resolve(config.plugins, u.plugins) for u in config.proxy.upstreams)
    assert [p.name for p in fs] == ["tool_access", "secrets"]
    access = fs[0].config
    assert access.tools.deny == ("rm",) and access.prompts.deny == ("p",)
    assert [p.name for p in git] == [f"{SAMPLE}:Recorder", "tool_access", "secrets", "pii"]
    assert [p.mode for p in git][2] == "redact"
    assert [(p.name, p.mode) for p in web] == [
        ("tool_access", "block"),
        ("secrets", "block"),
        ("pii", "redact"),
    ]
    assert isinstance(git[2].cls, type) and git[2].cls is SecretsPlugin and fs[0].cls is ToolAccessPlugin


def test_equal_priorities_keep_the_order_written() -> None:
    config = config_with(
        "a",
        plugins=[
            {"name": f"{SAMPLE}:Tagger", "priority": 50, "config": {"tag": "1"}},
            {"name": "pii"},  # 50 by default
            {"name": f"{SAMPLE}:Recorder", "priority": 50},
            {"name": "tool_access", "priority": 99},
            {"name": "secrets"},  # 40
        ],
    )
    order = [p.name.rsplit(":", 1)[-1] for p in resolve(config.plugins, ())]
    assert order == ["secrets", "Tagger", "pii", "Recorder", "tool_access"]


def test_a_plugin_only_one_server_runs_needs_no_global_entry() -> None:
    config = config_with("a", "b", per_server={"b": [{"name": "pii", "mode": "block"}]})
    a, b = (resolve(config.plugins, u.plugins) for u in config.proxy.upstreams)
    assert a == [] and [(p.name, p.mode) for p in b] == [("pii", "block")]


def test_single_server_overrides_under_proxy_upstream() -> None:
    config = parse_config(
        "plugins: [{name: pii}]\nproxy:\n  upstream:\n    command: [srv]\n    plugins: [{name: pii, enabled: false}]\n"
    )
    assert resolve(config.plugins, config.proxy.upstreams[0].plugins) == []
