"""Upstream notifications reach clients rewritten for the namespace, and list changes are re-listed."""

from __future__ import annotations

import logging

import pytest
import trio

from tests.gateway.fakes import FakeServer, echo, make_config, running_gateway


def _pair(**kwargs: object) -> tuple[FakeServer, FakeServer]:
    return FakeServer("alpha", tools={"echo": echo}, **kwargs), FakeServer("beta", tools={"echo": echo})  # type: ignore[arg-type]


async def test_log_messages_get_the_server_as_logger_in_multi_mode(
    autojump_clock: trio.testing.MockClock,
) -> None:
    alpha, beta = _pair()
    async with running_gateway(make_config("alpha", "beta"), alpha, beta) as (_, client):
        await client.initialize()
        await alpha.session.notify("notifications/message", {"level": "info", "data": "plain"})
        await alpha.session.notify(
            "notifications/message",
            {"level": "error", "logger": "db", "data": "named", "_meta": {"trace": "t1"}},
        )
        await client.wait_for(lambda: len(client.notified("notifications/message")) == 2)
        plain, named = (n["params"] for n in client.notified("notifications/message"))
        assert plain == {
            "level": "info",
            "data": "plain",
            "logger": "alpha",
            "_meta": {"watchgate/server": "alpha"},
        }
        assert named == {
            "level": "error",
            "logger": "alpha/db",
            "data": "named",
            "_meta": {"trace": "t1", "watchgate/server": "alpha"},
        }


async def test_resource_updated_gets_the_prefixed_uri(autojump_clock: trio.testing.MockClock) -> None:
    alpha, beta = _pair()
    async with running_gateway(make_config("alpha", "beta"), alpha, beta) as (_, client):
        await client.initialize()
        assert await client.result("resources/subscribe", {"uri": "beta+file:///x"}) == {}
        await beta.session.notify("notifications/resources/updated", {"uri": "file:///x"})
        await client.wait_for(lambda: bool(client.notified("notifications/resources/updated")))
        assert client.notified("notifications/resources/updated")[0]["params"] == {
            "uri": "beta+file:///x",
            "_meta": {"watchgate/server": "beta"},
        }


async def test_other_notifications_only_get_the_source_in_meta(
    autojump_clock: trio.testing.MockClock,
) -> None:
    alpha, beta = _pair()
    async with running_gateway(make_config("alpha", "beta"), alpha, beta) as (_, client):
        await client.initialize()
        await alpha.session.notify("notifications/tasks/status", {"taskId": "t", "status": "working"})
        await alpha.session.notify("notifications/custom")
        await client.wait_for(lambda: bool(client.notified("notifications/custom")))
        assert client.notified("notifications/tasks/status")[0]["params"] == {
            "taskId": "t",
            "status": "working",
            "_meta": {"watchgate/server": "alpha"},
        }
        assert client.notified("notifications/custom")[0]["params"] == {
            "_meta": {"watchgate/server": "alpha"}
        }


async def test_notification_with_params_not_an_object_is_forwarded_unchanged(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    alpha, beta = _pair()
    async with running_gateway(make_config("alpha", "beta"), alpha, beta) as (_, client):
        await client.initialize()
        with caplog.at_level(logging.WARNING, logger="watchgate.notifications"):
            await alpha.session.send({"jsonrpc": "2.0", "method": "notifications/odd", "params": [1]})
            await client.wait_for(lambda: bool(client.notified("notifications/odd")))
        assert client.notified("notifications/odd")[0]["params"] == [1]
        assert any("[alpha] sent notifications/odd" in r.getMessage() for r in caplog.records)


async def test_single_mode_passes_notifications_unchanged(autojump_clock: trio.testing.MockClock) -> None:
    solo = FakeServer("solo")
    async with running_gateway(make_config("solo"), solo) as (_, client):
        await client.initialize()
        params = {"level": "info", "logger": "db", "data": "x"}
        assert await client.result("resources/subscribe", {"uri": "file:///x"}) == {}
        await solo.session.notify("notifications/message", params)
        await solo.session.notify("notifications/resources/updated", {"uri": "file:///x"})
        await client.wait_for(lambda: bool(client.notified("notifications/resources/updated")))
        assert client.notified("notifications/message")[0]["params"] == params
        assert client.notified("notifications/resources/updated")[0]["params"] == {"uri": "file:///x"}


async def test_no_notifications_before_the_client_said_initialized(
    autojump_clock: trio.testing.MockClock,
) -> None:
    solo = FakeServer("solo")
    async with running_gateway(make_config("solo"), solo) as (_, client):
        await client.result("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}})
        await solo.session.notify("notifications/message", {"level": "info", "data": "early"})
        await trio.sleep(1)
        assert client.notifications == []
        await client.notify("notifications/initialized")
        await trio.sleep(1)
        await solo.session.notify("notifications/message", {"level": "info", "data": "late"})
        await client.wait_for(lambda: bool(client.notifications))
        assert [n["params"]["data"] for n in client.notifications] == ["late"]


# --- list changes --------------------------------------------------------------------------------


async def test_tools_list_changed_relists_and_tells_the_client_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    alpha, beta = _pair()
    async with running_gateway(make_config("alpha", "beta"), alpha, beta) as (_, client):
        await client.initialize()
        await trio.sleep(1)
        assert client.notifications == []
        alpha.tools["new"] = echo
        await alpha.session.notify("notifications/tools/list_changed")
        await client.wait_for(lambda: bool(client.notifications))
        await trio.sleep(1)
        assert [n["method"] for n in client.notifications] == ["notifications/tools/list_changed"]
        # the cache is fresh by the time the client hears of it
        tools = (await client.result("tools/list"))["tools"]
        assert [t["name"] for t in tools] == ["alpha__echo", "alpha__new", "beta__echo"]
        assert len(alpha.session.requests("tools/list")) == 2
        assert len(beta.session.requests("tools/list")) == 1


async def test_list_changed_without_a_change_is_not_announced(autojump_clock: trio.testing.MockClock) -> None:
    alpha, beta = _pair()
    async with running_gateway(make_config("alpha", "beta"), alpha, beta) as (_, client):
        await client.initialize()
        await alpha.session.notify("notifications/tools/list_changed")
        await client.wait_for(lambda: len(alpha.session.requests("tools/list")) == 2)
        await trio.sleep(1)
        assert client.notifications == []


async def test_list_changed_for_a_list_the_server_lacks_does_not_relist(
    autojump_clock: trio.testing.MockClock,
) -> None:
    solo = FakeServer("solo")  # tools only
    async with running_gateway(make_config("solo"), solo) as (_, client):
        await client.initialize()
        await solo.session.notify("notifications/prompts/list_changed")
        await trio.sleep(1)
        assert solo.session.requests("prompts/list") == []
        assert client.notifications == []


async def test_resources_list_changed_refreshes_resources_and_templates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    docs = FakeServer("docs", resources=["file:///a"], capabilities={"resources": {}})
    async with running_gateway(make_config("docs"), docs) as (_, client):
        await client.initialize()
        docs.resources.append("file:///b")
        docs.templates = ["tpl://{id}", "db://{table}"]
        await docs.session.notify("notifications/resources/list_changed")
        await client.wait_for(lambda: bool(client.notifications))
        await trio.sleep(1)
        assert [n["method"] for n in client.notifications] == ["notifications/resources/list_changed"]
        resources = (await client.result("resources/list"))["resources"]
        assert [r["uri"] for r in resources] == ["file:///a", "file:///b"]
        templates = (await client.result("resources/templates/list"))["resourceTemplates"]
        assert [t["uriTemplate"] for t in templates] == ["tpl://{id}", "db://{table}"]


async def test_server_with_empty_lists_does_not_announce_a_change(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def slow_start(session: object) -> None:
        await trio.sleep(5)

    empty = FakeServer("empty", capabilities={"tools": {}, "prompts": {}}, on_initialize=slow_start)
    late = FakeServer("late", tools={"echo": echo}, capabilities={"tools": {}}, on_initialize=slow_start)
    config = make_config("empty", "late", startup_wait=1)
    async with running_gateway(config, empty, late) as (gateway, client):
        await client.initialize()
        # both come up after the client is initialized: only late's tools are news
        await client.wait_for(lambda: len(empty.session.requests("prompts/list")) == 1)
        await client.wait_for(lambda: gateway.router.tool_count("late") == 1)
        await trio.sleep(1)
        assert [n["method"] for n in client.notifications] == ["notifications/tools/list_changed"]


async def test_logging_set_level_goes_to_upstreams_with_logging(
    autojump_clock: trio.testing.MockClock,
) -> None:
    loud = FakeServer("loud", capabilities={"tools": {}, "logging": {}})
    mute = FakeServer("mute", capabilities={"tools": {}})
    async with running_gateway(make_config("loud", "mute"), loud, mute) as (_, client):
        await client.initialize()
        assert await client.result("logging/setLevel", {"level": "debug"}) == {}
        await client.wait_for(lambda: bool(loud.session.requests("logging/setLevel")))
        assert loud.session.requests("logging/setLevel")[0]["params"] == {"level": "debug"}
        await trio.sleep(1)
        assert mute.session.requests("logging/setLevel") == []


async def test_logging_set_level_needs_a_level(autojump_clock: trio.testing.MockClock) -> None:
    async with running_gateway(make_config("solo"), FakeServer("solo")) as (_, client):
        await client.initialize()
        error = (await client.request("logging/setLevel", {}))["error"]
        assert error["code"] == -32602 and error["message"].startswith("params.level")


async def test_set_level_refused_upstream_is_logged(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    loud = FakeServer("loud", capabilities={"logging": {}}, fail_methods=("logging/setLevel",))
    async with running_gateway(make_config("loud"), loud) as (_, client):
        await client.initialize()
        with caplog.at_level(logging.WARNING, logger="watchgate.router"):
            assert await client.result("logging/setLevel", {"level": "error"}) == {}
            await client.wait_for(lambda: bool(loud.session.requests("logging/setLevel")))
            await trio.sleep(1)
        assert any(
            "[loud] logging/setLevel failed: logging/setLevel is broken" in r.getMessage()
            for r in caplog.records
        )
