"""The plugin documentation stays true: the example plugin of plugin-development.md runs, and
every YAML example in plugins.md loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import trio
import yaml

from tests.gateway.fakes import echo, running_gateway
from tests.plugins.helpers import RichServer, config_with, echo_args, tool_returning
from watchgate.config import parse_config
from watchgate.errors import ConfigError

DOCS = Path(__file__).resolve().parents[2] / "docs"
EXAMPLE = "keyword_guard:KeywordGuard"


@pytest.fixture(autouse=True)
def _example_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(DOCS / "examples" / "plugins"))


async def test_the_example_plugin_blocks_hides_and_redacts(autojump_clock: trio.testing.MockClock) -> None:
    alpha = RichServer(
        "alpha",
        tools={"echo": echo_args, "leak": tool_returning("status of Bluebird: green"), "nest": echo},
        definitions={"nest": {"description": "Reports on project nightjar."}},
    )
    beta = RichServer("beta", tools={"echo": echo_args})
    config = config_with(
        "alpha",
        "beta",
        plugins=[{"name": EXAMPLE, "config": {"words": ["bluebird", "nightjar"]}}],
        per_server={"beta": [{"name": EXAMPLE, "mode": "redact"}]},
    )
    async with running_gateway(config, alpha, beta) as (_, client):
        await client.initialize()
        names = [t["name"] for t in (await client.result("tools/list"))["tools"]]
        assert names == ["alpha__echo", "alpha__leak", "beta__echo"]
        denied = (
            await client.request("tools/call", {"name": "alpha__echo", "arguments": {"q": "bluebird?"}})
        )["error"]
        assert denied["code"] == -32010
        assert denied["message"] == (
            f"blocked by plugin '{EXAMPLE}': the arguments of tool 'echo' on 'alpha' mention a code name"
        )
        leaked = await client.result("tools/call", {"name": "alpha__leak"})
        assert leaked["content"][0]["text"] == "status of [code name]: green"
        await client.result("tools/call", {"name": "beta__echo", "arguments": {"q": "Nightjar plans"}})
        assert beta.session.requests("tools/call")[0]["params"]["arguments"] == {"q": "[code name] plans"}
        assert "result" in await client.request("resources/list")


def test_the_example_plugin_config_is_checked() -> None:
    with pytest.raises(ConfigError) as info:
        config_with("a", plugins=[{"name": EXAMPLE, "config": {"word": ["x"]}}])
    [problem] = info.value.problems
    assert (problem.path, problem.message) == (
        "plugins[0].config.word",
        "unknown key 'word' (did you mean 'words'?)",
    )


def _yaml_blocks(page: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", (DOCS / page).read_text(), re.S)


@pytest.mark.parametrize("block", _yaml_blocks("plugins.md"), ids=lambda b: b.split("\n", 1)[0][:40])
def test_every_yaml_example_in_plugins_md_loads(block: str) -> None:
    document = yaml.safe_load(block)
    if "proxy" not in document:
        document["proxy"] = {
            "upstreams": [{"name": "fs", "command": ["x"]}, {"name": "github", "command": ["x"]}]
        }
    config = parse_config(yaml.safe_dump(document))
    assert config.plugins or any(u.plugins for u in config.proxy.upstreams)


def test_plugins_md_has_examples() -> None:
    assert len(_yaml_blocks("plugins.md")) >= 7


def test_the_guide_embeds_the_example_file_as_it_is() -> None:
    guide = (DOCS / "development" / "plugin-development.md").read_text()
    source = (DOCS / "examples" / "plugins" / "keyword_guard.py").read_text()
    [embedded] = [
        block for block in re.findall(r"```python\n(.*?)```", guide, re.S) if "class KeywordGuard" in block
    ]
    body = source[source.index("from __future__") :]
    assert embedded == body


def test_the_guide_testing_snippet_runs() -> None:
    guide = (DOCS / "development" / "plugin-development.md").read_text()
    [snippet] = [
        block for block in re.findall(r"```python\n(.*?)```", guide, re.S) if "PluginSetup(None)" in block
    ]
    import keyword_guard

    exec(snippet, dict(vars(keyword_guard)))
