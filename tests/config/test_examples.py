"""Every shipped configuration must load, so the documentation cannot drift from the schema."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from watchgate.config import Transport, load_config
from watchgate.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples" / "configurations"
SHIPPED = sorted(EXAMPLES.glob("*.yaml")) + sorted(ROOT.glob("supervisor.yaml"))


def test_the_examples_exist() -> None:
    names = {path.name for path in EXAMPLES.glob("*.yaml")}
    assert {"multi-server-basic.yaml", "multi-server-advanced.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configuration_loads(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Examples may reference secrets from the environment; give each one a stand-in value.
    for name in set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", path.read_text())):
        monkeypatch.setenv(name, f"test-{name.lower()}")
    config = load_config(path)
    names = [u.name for u in config.proxy.upstreams]
    assert len(names) == len(set(names)) >= 1
    for upstream in config.proxy.upstreams:
        if upstream.transport is Transport.STDIO:
            assert upstream.command
        else:
            assert upstream.url


def test_basic_example_is_the_two_documented_servers() -> None:
    config = load_config(EXAMPLES / "multi-server-basic.yaml")
    time, files = config.proxy.upstreams
    assert config.proxy.multi_server
    assert (time.name, time.command[:3]) == ("time", ("python3", "-m", "mcp_server_time"))
    assert files.command == ("npx", "-y", "@modelcontextprotocol/server-filesystem", "/tmp")


def test_advanced_example_resolves_paths_and_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_example")
    monkeypatch.setenv("EXAMPLE_DOCS_TOKEN", "docs-token")
    config = load_config(EXAMPLES / "multi-server-advanced.yaml")
    by_name = {u.name: u for u in config.proxy.upstreams}
    assert set(by_name) == {"time", "files", "github", "scratch", "remote-docs"}
    assert {u.restart for u in by_name.values()} == {"permanent", "transient", "temporary"}
    assert by_name["files"].cwd == str(tmp_path / "projects/watchgate")
    assert by_name["github"].env == {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_example"}
    assert by_name["scratch"].cwd == str(EXAMPLES / "servers")
    assert by_name["remote-docs"].headers == {"Authorization": "Bearer docs-token"}
    assert config.logging.level == "warning"
    assert config.proxy.startup_wait == 20


def test_advanced_example_without_its_secrets_names_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("EXAMPLE_DOCS_TOKEN", raising=False)
    with pytest.raises(ConfigError) as info:
        load_config(EXAMPLES / "multi-server-advanced.yaml")
    assert [p.path for p in info.value.problems] == [
        "proxy.upstreams[2].env.GITHUB_PERSONAL_ACCESS_TOKEN",
        "proxy.upstreams[4].headers.Authorization",
    ]
