"""The plugin pipeline in a running gateway: order, context, modes, decisions, failing closed."""

from __future__ import annotations

from typing import Any

import pytest
import trio

import watchgate.plugins.pipeline as pipeline_module
from tests.gateway.fakes import FakeServer, echo, running_gateway, text
from tests.plugins.helpers import config_with, echo_args, gateway_with_hooks
from tests.plugins.test_hooks import Spy
from watchgate.errors import PluginLoadError
from watchgate.gateway.tree import Gateway
from watchgate.hooks import CallContext, Decision
from watchgate.plugins.pipeline import PluginPipeline, build_plugins
from watchgate.protocol import jsonrpc

S = "tests.plugins.sample_plugins"


def recorder(gateway: Gateway, upstream: str) -> list[dict[str, Any]]:
    assert isinstance(gateway.plugins, PluginPipeline)
    [plugin] = [p for p in gateway.plugins.instances(upstream) if type(p).__name__ == "Recorder"]
    return plugin.seen  # type: ignore[attr-defined, no-any-return]


async def test_plugins_run_by_priority_on_requests_and_responses(
    autojump_clock: trio.testing.MockClock,
) -> None:
    solo = FakeServer("solo", tools={"echo": echo_args})
    config = config_with(
        "solo",
        plugins=[
            {"name": f"{S}:Tagger", "priority": 20, "config": {"tag": "a"}},
            {"name": f"{S}:SecondTagger", "priority": 10, "config": {"tag": "b"}},
            {"name": f"{S}:ThirdTagger", "config": {"tag": "c"}},  # 100
            {"name": f"{S}:Recorder", "priority": 200},
        ],
    )
    spy = Spy()
    async with gateway_with_hooks(config, solo, extra_hooks=[spy]) as (gateway, attach):
        client = await attach()
        await client.initialize()
        result = await client.result("tools/call", {"name": "echo", "arguments": {"x": 1}})
        assert solo.session.requests("tools/call")[0]["params"]["arguments"] == {"x": 1, "trail": "bac"}
        assert result["content"][0]["text"].endswith("bac")
        [(ctx, _)] = spy.of("response")
        tagged = [(d.plugin.rsplit(":", 1)[1], d.stage, d.action) for d in ctx.decisions]
        assert tagged == [
            ("SecondTagger", "request", "modify"),
            ("Tagger", "request", "modify"),
            ("ThirdTagger", "request", "modify"),
            ("Recorder", "request", "allow"),
            ("SecondTagger", "response", "modify"),
            ("Tagger", "response", "modify"),
            ("ThirdTagger", "response", "modify"),
            ("Recorder", "response", "allow"),
        ]
        assert ctx.decisions[0].reason == "tagged b"
        seen = recorder(gateway, "solo")
        assert seen[-1]["stage"] == "response" and len(seen[-1]["decisions"]) == 7  # what came before it


async def test_plugins_see_the_server_name_client_and_own_name(
    autojump_clock: trio.testing.MockClock,
) -> None:
    alpha = FakeServer("alpha", tools={"echo": echo})
    beta = FakeServer("beta", tools={"echo": echo})
    config = config_with(
        "alpha",
        "beta",
        plugins=[{"name": f"{S}:Recorder", "config": {"tag": "global"}}],
        per_server={"beta": [{"name": f"{S}:Recorder", "config": {"tag": "beta's own"}}]},
    )
    async with running_gateway(config, alpha, beta) as (gateway, client):
        await client.initialize()
        await client.result("tools/call", {"name": "beta__echo", "arguments": {"text": "hi"}})
        await alpha.session.notify("notifications/message", {"level": "info", "data": "note"})
        await client.wait_for(lambda: bool(client.notified("notifications/message")))
        request, response = [s for s in recorder(gateway, "beta") if s["stage"] in ("request", "response")]
        assert {k: request[k] for k in ("tag", "server", "upstream", "method", "name", "public")} == {
            "tag": "beta's own",
            "server": "beta",
            "upstream": "beta",
            "method": "tools/call",
            "name": "echo",
            "public": "beta__echo",
        }
        assert request["client"] is not None and request["client"] == response["client"]
        assert request["body"] == {"name": "echo", "arguments": {"text": "hi"}}
        assert response["body"] == text("hi")
        [note] = [s for s in recorder(gateway, "alpha") if s["stage"] == "notification"]
        assert (note["tag"], note["server"], note["client"], note["method"]) == (
            "global",
            "alpha",
            None,
            "notifications/message",
        )
        lists = {s["stage"]: s["body"] for s in recorder(gateway, "alpha") if s["stage"].startswith("list")}
        assert lists["list:tools"] == ["echo"]


async def test_single_server_mode_plugins_see_no_server_name(autojump_clock: trio.testing.MockClock) -> None:
    solo = FakeServer("default", tools={"echo": echo})
    config = config_with("default", single=True, plugins=[{"name": f"{S}:Recorder"}])
    async with running_gateway(config, solo) as (gateway, client):
        await client.initialize()
        await client.result("tools/call", {"name": "echo"})
        request = next(s for s in recorder(gateway, "default") if s["stage"] == "request")
        assert (request["server"], request["upstream"], request["public"]) == (None, "default", "echo")


@pytest.mark.parametrize(
    ("plugin", "extra", "reason"),
    [
        ("Raiser", {}, "the plugin failed (RuntimeError)"),
        ("Sleeper", {"timeout": 1}, "the plugin did not answer within 1 s"),
        ("Hog", {"timeout": 1}, "the plugin took longer than its timeout of 1 s"),
        ("Nonsense", {}, "the plugin returned an invalid verdict"),
    ],
)
async def test_a_failing_plugin_denies_the_request(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    plugin: str,
    extra: dict[str, Any],
    reason: str,
) -> None:
    solo = FakeServer("solo", tools={"echo": echo})
    config = config_with(
        "solo", plugins=[{"name": f"{S}:{plugin}", "config": {"stages": ["request"]}, **extra}]
    )
    spy = Spy()
    async with gateway_with_hooks(config, solo, extra_hooks=[spy]) as (_, attach):
        client = await attach()
        await client.initialize()
        error = (await client.request("tools/call", {"name": "echo"}))["error"]
        assert error["code"] == -32010
        assert error["message"] == f"blocked by plugin '{S}:{plugin}': {reason}"
        assert solo.session.requests("tools/call") == []
        [(ctx, _)] = spy.of("response")
        assert ctx.decisions[0] == Decision(f"{S}:{plugin}", "request", "error", reason)
    assert "AKIAIOSFODNN7EXAMPLE" not in str(error)  # the exception's text stays in the log
    if plugin == "Raiser":
        assert "secret detail" in caplog.text


async def test_failing_plugins_fail_closed_for_responses_notifications_and_lists(
    autojump_clock: trio.testing.MockClock,
) -> None:
    alpha = FakeServer("alpha", tools={"echo": echo})
    beta = FakeServer("beta", tools={"echo": echo})
    config = config_with(
        "alpha",
        "beta",
        per_server={
            "alpha": [{"name": f"{S}:Raiser", "config": {"stages": ["response", "notification", "list"]}}]
        },
    )
    async with running_gateway(config, alpha, beta) as (_, client):
        await client.initialize()
        names = [t["name"] for t in (await client.result("tools/list"))["tools"]]
        assert names == ["beta__echo"]  # alpha's list failed its plugin: hidden
        error = (await client.request("tools/call", {"name": "alpha__echo"}))["error"]
        assert error["code"] == -32010 and "failed (RuntimeError)" in error["message"]
        await alpha.session.notify("notifications/message", {"level": "info", "data": "lost"})
        await beta.session.notify("notifications/message", {"level": "info", "data": "kept"})
        await client.wait_for(lambda: bool(client.notified("notifications/message")))
        await trio.sleep(1)
        assert [n["params"]["data"] for n in client.notified("notifications/message")] == ["kept"]


async def test_slow_and_nonsense_list_filters_hide_the_list(autojump_clock: trio.testing.MockClock) -> None:
    alpha = FakeServer("alpha", tools={"echo": echo})
    beta = FakeServer("beta", tools={"echo": echo})
    config = config_with(
        "alpha",
        "beta",
        per_server={
            "alpha": [{"name": f"{S}:Sleeper", "timeout": 2, "config": {"stages": ["list"]}}],
            "beta": [{"name": f"{S}:Nonsense"}],
        },
    )
    async with running_gateway(config, alpha, beta) as (_, client):
        await client.initialize()
        assert (await client.result("tools/list"))["tools"] == []


async def test_a_plugin_that_fails_open_lets_the_message_through(
    autojump_clock: trio.testing.MockClock,
) -> None:
    solo = FakeServer("solo", tools={"echo": echo})
    config = config_with("solo", plugins=[{"name": f"{S}:FailsOpen"}])
    spy = Spy()
    async with gateway_with_hooks(config, solo, extra_hooks=[spy]) as (_, attach):
        client = await attach()
        await client.initialize()
        assert await client.result("tools/call", {"name": "echo", "arguments": {"text": "ok"}}) == text("ok")
        assert [t["name"] for t in (await client.result("tools/list"))["tools"]] == ["echo"]
        [(ctx, _)] = spy.of("response")
        assert [(d.action, d.enforced) for d in ctx.decisions] == [("error", False), ("error", False)]


async def test_audit_only_records_without_acting(autojump_clock: trio.testing.MockClock) -> None:
    solo = FakeServer("solo", tools={"echo": echo_args})
    config = config_with(
        "solo",
        plugins=[
            {"name": f"{S}:Denier", "mode": "audit_only"},
            {"name": f"{S}:Tagger", "mode": "audit_only", "config": {"tag": "t"}},
            {"name": f"{S}:Raiser", "mode": "audit_only", "config": {"stages": ["request"]}},
        ],
    )
    spy = Spy()
    async with gateway_with_hooks(config, solo, extra_hooks=[spy]) as (_, attach):
        client = await attach()
        await client.initialize()
        assert [t["name"] for t in (await client.result("tools/list"))["tools"]] == ["echo"]
        result = await client.result("tools/call", {"name": "echo", "arguments": {"x": 1}})
        assert result["structuredContent"] == {"x": 1}
        await solo.session.notify("notifications/message", {"level": "info", "data": "kept"})
        await client.wait_for(lambda: bool(client.notified("notifications/message")))
        assert "tag" not in client.notified("notifications/message")[0]["params"]
        [(ctx, _)] = spy.of("response")
        assert [(d.stage, d.action, d.enforced) for d in ctx.decisions] == [
            ("request", "deny", False),
            ("request", "modify", False),
            ("request", "error", False),
            ("response", "deny", False),
            ("response", "modify", False),
            ("response", "allow", True),
        ]


async def test_denials_notes_and_changes_at_each_stage(autojump_clock: trio.testing.MockClock) -> None:
    alpha = FakeServer("alpha", tools={"echo": echo}, fail_methods=("prompts/get",), prompts=["p"])
    alpha.capabilities = {"tools": {}, "prompts": {}}
    beta = FakeServer("beta", tools={"echo": echo})
    gamma = FakeServer("gamma", tools={"echo": echo})
    config = config_with(
        "alpha",
        "beta",
        "gamma",
        per_server={
            "alpha": [{"name": f"{S}:Tagger", "config": {"tag": "!"}}],
            "beta": [{"name": f"{S}:Denier", "config": {"stages": ["response", "notification"]}}],
            "gamma": [{"name": f"{S}:Denier", "config": {"note": "looks odd"}}],
        },
    )
    spy = Spy()
    async with gateway_with_hooks(config, alpha, beta, gamma, extra_hooks=[spy]) as (_, attach):
        client = await attach()
        await client.initialize()
        error = (await client.request("prompts/get", {"name": "alpha__p"}))["error"]
        assert error["message"] == "prompts/get is broken!"  # plugins see and may change errors too
        await alpha.session.notify("notifications/message", {"level": "info", "data": "x"})
        await client.wait_for(lambda: bool(client.notified("notifications/message")))
        assert client.notified("notifications/message")[0]["params"]["tag"] == "!"
        denied = (await client.request("tools/call", {"name": "beta__echo"}))["error"]
        assert denied["message"] == f"blocked by plugin '{S}:Denier': no responses today"
        assert beta.session.requests("tools/call")  # the request went; its answer did not come back
        await beta.session.notify("notifications/message", {"level": "info", "data": "dropped"})
        assert await client.result("tools/call", {"name": "gamma__echo", "arguments": {"text": "y"}}) == text(
            "y"
        )
        await trio.sleep(1)
        assert len(client.notified("notifications/message")) == 1
        gamma_ctx = spy.of("response")[-1][0]
        assert gamma_ctx.decisions[0] == Decision(f"{S}:Denier", "request", "allow", "looks odd")


async def test_the_payload_is_decoded_once_per_message(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[Any] = []
    real = jsonrpc.load

    def counting(value: Any) -> Any:
        loads.append(value)
        return real(value)

    monkeypatch.setattr(pipeline_module.jsonrpc, "load", counting)
    solo = FakeServer("solo", tools={"echo": echo})
    config = config_with(
        "solo",
        plugins=[
            {"name": f"{S}:Recorder"},
            {"name": f"{S}:Denier", "config": {"stages": []}},
            {"name": "pii"},
        ],
    )
    async with running_gateway(config, solo) as (gateway, client):
        await client.initialize()
        loads.clear()
        await client.result("tools/call", {"name": "echo", "arguments": {"text": "hi"}})
        assert len(loads) == 2  # one request, one response; three plugins each
        seen = recorder(gateway, "solo")
        assert seen[-2]["body"] == {"name": "echo", "arguments": {"text": "hi"}}


async def test_reload_rebuilds_the_plugins_without_restarting_servers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    alpha = FakeServer("alpha", tools={"echo": echo, "rm": echo})
    beta = FakeServer("beta", tools={"echo": echo})
    first = config_with(
        "alpha", "beta", plugins=[{"name": "tool_access", "config": {"tools": {"deny": ["rm"]}}}]
    )
    async with gateway_with_hooks(first, alpha, beta) as (gateway, attach):
        client = await attach()
        await client.initialize()
        assert [t["name"] for t in (await client.result("tools/list"))["tools"]] == [
            "alpha__echo",
            "beta__echo",
        ]
        second = config_with("alpha", "beta", per_server={"beta": [{"name": "pii"}]})
        changes = await gateway.reload(second)
        assert changes["changed"] == [] and changes["rules"] == ["beta"] and changes["unchanged"] == ["alpha"]
        assert changes["plugins"] == ["plugins"]  # the global tool_access went
        await client.wait_for(lambda: gateway.router.tool_count("alpha") == 2)
        assert [t["name"] for t in (await client.result("tools/list"))["tools"]] == [
            "alpha__echo",
            "alpha__rm",
            "beta__echo",
        ]
        assert len(alpha.sessions) == 1
        await gateway.reload(config_with("alpha", "beta"))
        assert gateway.plugins is None and gateway.hooks.empty
        await gateway.reload(config_with("alpha", "beta"))  # nothing to rebuild


async def test_given_hooks_are_used_as_they_are(autojump_clock: trio.testing.MockClock) -> None:
    solo = FakeServer("solo", tools={"echo": echo})
    config = config_with("solo", plugins=[{"name": "pii"}])
    from watchgate.hooks import HookChain

    spy = Spy()
    async with gateway_with_hooks(config, solo, hooks=HookChain([spy])) as (gateway, attach):
        client = await attach()
        await client.initialize()
        await client.result("tools/call", {"name": "echo"})
        assert gateway.plugins is None and gateway.hooks.hooks == (spy,)
        await gateway.reload(config_with("solo", plugins=[{"name": "secrets"}]))
        assert gateway.hooks.hooks == (spy,)


def test_a_plugin_that_cannot_start_names_itself_and_the_server() -> None:
    config = config_with("alpha", plugins=[{"name": f"{S}:Broken"}])
    with pytest.raises(
        PluginLoadError, match=rf"plugin '{S}:Broken' could not start for 'alpha': OSError: no such"
    ):
        Gateway(config)


def test_build_plugins_is_none_when_nothing_runs() -> None:
    assert build_plugins(config_with("a")) is None
    assert build_plugins(config_with("a", plugins=[{"name": "pii", "enabled": False}])) is None
    pipeline = build_plugins(config_with("a", plugins=[{"name": "pii"}]))
    assert pipeline is not None and not pipeline.empty
    assert [type(p).__name__ for p in pipeline.instances("added-by-reload")] == ["PiiPlugin"]


async def test_an_upstream_the_pipeline_does_not_know_gets_the_global_plugins() -> None:
    pipeline = build_plugins(config_with("a", plugins=[{"name": "secrets", "mode": "block"}]))
    assert pipeline is not None
    ctx = CallContext("new", "new", 1, "tools/call", "t", "new__t", 1, 0.0, 0)
    request = jsonrpc.request(1, "tools/call", {"name": "t", "arguments": {"k": "AKIAIOSFODNN7EXAMPLE"}})
    with pytest.raises(jsonrpc.JsonRpcError, match="aws_access_key"):
        await pipeline.on_request(ctx, request)
    no_params = jsonrpc.request(1, "tools/call")
    assert await pipeline.on_request(ctx, no_params) is no_params


async def test_a_call_a_plugin_changed_still_gets_its_progress_token_swapped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """What the router decoded is dropped once a hook changes the message: the server gets the
    plugin's arguments and the gateway's progress token, not a stale copy of either."""
    solo = FakeServer("solo", tools={"echo": echo_args})
    config = config_with("solo", plugins=[{"name": f"{S}:Tagger", "config": {"tag": "a"}}])
    async with gateway_with_hooks(config, solo) as (_, attach):
        client = await attach()
        await client.initialize()
        params = {"name": "echo", "arguments": {"x": 1}, "_meta": {"progressToken": "t"}}
        await client.result("tools/call", params)
        upstream = solo.session.requests("tools/call")[0]
        assert upstream["params"]["arguments"] == {"x": 1, "trail": "a"}
        assert upstream["params"]["_meta"] == {"progressToken": upstream["id"]}
