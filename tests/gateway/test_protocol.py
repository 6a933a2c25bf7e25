"""What the gateway answers itself (initialize, ping, errors) and how it namespaces what it forwards."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from tests.gateway.fakes import FakeServer, FakeSession, echo, make_config, running_gateway


async def never_answer(session: FakeSession) -> None:
    await trio.sleep_forever()


# --- initialize ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"])
async def test_initialize_echoes_a_known_client_version(
    autojump_clock: trio.testing.MockClock, version: str
) -> None:
    async with running_gateway(make_config("solo"), FakeServer("solo")) as (_, client):
        result = await client.initialize(version)
        assert result["protocolVersion"] == version
        assert result["serverInfo"]["name"] == "watchgate"


async def test_initialize_answers_latest_to_an_unknown_version(
    autojump_clock: trio.testing.MockClock,
) -> None:
    old = FakeServer("solo", protocol_version="2024-11-05")
    async with running_gateway(make_config("solo"), old) as (_, client):
        # never the upstream's version, never the client's unknown one
        assert (await client.initialize("2030-01-01"))["protocolVersion"] == "2025-11-25"


async def test_capabilities_are_the_union_of_the_upstreams(autojump_clock: trio.testing.MockClock) -> None:
    plain = FakeServer("plain", capabilities={"tools": {}})
    rich = FakeServer(
        "rich",
        capabilities={
            "tools": {},
            "prompts": {},
            "resources": {"subscribe": True},
            "logging": {},
            "completions": {},
        },
    )
    async with running_gateway(make_config("plain", "rich"), plain, rich) as (_, client):
        caps = (await client.initialize())["capabilities"]
    assert caps == {
        "tools": {"listChanged": True},
        "prompts": {"listChanged": True},
        "resources": {"subscribe": True, "listChanged": True},
        "logging": {},
        "completions": {},
    }


async def test_capabilities_leave_out_what_no_upstream_has(autojump_clock: trio.testing.MockClock) -> None:
    one = FakeServer("one", capabilities={"tools": {}})
    two = FakeServer("two", capabilities={"tools": {}, "resources": {}})
    async with running_gateway(make_config("one", "two"), one, two) as (_, client):
        caps = (await client.initialize())["capabilities"]
    assert caps == {"tools": {"listChanged": True}, "resources": {"subscribe": False, "listChanged": True}}


async def test_instructions_are_merged_per_server_in_multi_mode(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fs = FakeServer("fs", instructions="Read files with read_file.")
    quiet = FakeServer("quiet")
    git = FakeServer("git", instructions="Commit often.")
    async with running_gateway(make_config("fs", "quiet", "git"), fs, quiet, git) as (_, client):
        result = await client.initialize()
    assert result["instructions"] == (
        "## Server 'fs' (tools prefixed fs__)\nRead files with read_file.\n\n"
        "## Server 'git' (tools prefixed git__)\nCommit often."
    )


async def test_instructions_pass_through_in_single_mode(autojump_clock: trio.testing.MockClock) -> None:
    solo = FakeServer("default", instructions="Be brief.")
    async with running_gateway(make_config("default", single=True), solo) as (_, client):
        assert (await client.initialize())["instructions"] == "Be brief."


async def test_no_instructions_when_no_upstream_has_any(autojump_clock: trio.testing.MockClock) -> None:
    async with running_gateway(make_config("solo"), FakeServer("solo")) as (_, client):
        assert "instructions" not in await client.initialize()


async def test_initialize_and_lists_wait_for_first_start_and_answer_in_arrival_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def slow_start(session: FakeSession) -> None:
        await trio.sleep(3)

    slow = FakeServer("slow", tools={"echo": echo}, on_initialize=slow_start)
    fast = FakeServer("fast", tools={"echo": echo})
    async with running_gateway(make_config("slow", "fast"), slow, fast) as (_, client):
        started = trio.current_time()
        first = await client.start("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}})
        third = await client.start("ping")
        second = await client.start("tools/list")
        assert (await client.response(third))["result"] == {}  # ping does not wait
        assert trio.current_time() - started < 1
        assert first not in client.responses and second not in client.responses
        await client.response(second)
        assert trio.current_time() - started == pytest.approx(3)
        assert list(client.responses) == [first]  # answered before the list, in arrival order
        init = await client.response(first)
        assert init["result"]["protocolVersion"] == "2025-11-25"
        tools = (await client.result("tools/list"))["tools"]
        assert [t["name"] for t in tools] == ["slow__echo", "fast__echo"]


async def test_nothing_is_answered_before_the_initialize_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A client that sends its first call with its initialize (a pipe, a script) gets the
    initialize answer first, then the call's, and no list_changed in between."""

    async def slow_start(session: FakeSession) -> None:
        await trio.sleep(3)

    slow = FakeServer("slow", tools={"echo": echo}, on_initialize=slow_start)
    fast = FakeServer("fast", tools={"echo": echo})
    async with running_gateway(make_config("slow", "fast"), slow, fast) as (_, client):
        burst = [
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {}},
            },
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "fast__echo", "arguments": {"text": "hi"}},
            },
        ]
        await client.send_raw(b"".join(json.dumps(m).encode() + b"\n" for m in burst))
        await client.response(2)
        assert client.received[0]["id"] == 1 and "result" in client.received[0]
        assert [m.get("id") for m in client.received if "method" not in m] == [1, 2]


async def test_answers_come_at_startup_wait_without_a_hanging_upstream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stuck = FakeServer("stuck", tools={"echo": echo}, on_initialize=never_answer)
    fine = FakeServer("fine", tools={"echo": echo})
    config = make_config("stuck", "fine", startup_wait=4, startup_timeout=60)
    async with running_gateway(config, stuck, fine) as (_, client):
        started = trio.current_time()
        listed = await client.start("tools/list")
        await client.initialize()
        assert trio.current_time() - started == pytest.approx(4)
        assert [t["name"] for t in (await client.response(listed))["result"]["tools"]] == ["fine__echo"]


# --- answered locally, and errors ---------------------------------------------------------------


async def test_ping_is_answered_by_the_gateway(autojump_clock: trio.testing.MockClock) -> None:
    solo = FakeServer("solo")
    async with running_gateway(make_config("solo"), solo) as (_, client):
        await client.initialize()
        assert await client.request("ping") == {"jsonrpc": "2.0", "id": 2, "result": {}}
        assert "ping" not in solo.session.methods()


async def test_unknown_method_is_32601_naming_it(autojump_clock: trio.testing.MockClock) -> None:
    async with running_gateway(make_config("solo"), FakeServer("solo")) as (_, client):
        await client.initialize()
        error = (await client.request("tasks/teleport"))["error"]
        assert error["code"] == -32601 and "'tasks/teleport'" in error["message"]


async def test_bad_json_is_32700_with_null_id_and_the_session_goes_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_gateway(make_config("solo"), FakeServer("solo")) as (_, client):
        await client.initialize()
        await client.send_raw(b'{"jsonrpc": "2.0", "id": 9, "method": \n')
        error = (await client.response(None))["error"]
        assert error["code"] == -32700 and error["message"].startswith("parse error")
        assert (await client.request("ping"))["result"] == {}


DEEP = b"[" * 1000 + b"]" * 1000


@pytest.mark.parametrize(
    ("line", "answered_as", "code", "words"),
    [
        (DEEP, None, -32600, "batch requests are not supported"),
        (  # answered under its id: the client is waiting for it (it hung before)
            b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"a":' + DEEP + b"}}",
            3,
            -32600,
            "nested too deeply",
        ),
        (
            b'{"params":{"a":' + DEEP + b'},"method":"tools/call","id":"late","jsonrpc":"2.0"}',
            "late",
            -32600,
            "nested too deeply",
        ),
        (b'{"jsonrpc":"2.0","id":' + DEEP + b',"method":"ping"}', None, -32600, "`id`"),
    ],
)
async def test_deeply_nested_json_is_an_error_and_the_session_goes_on(
    line: bytes, answered_as: object, code: int, words: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with running_gateway(make_config("solo"), FakeServer("solo")) as (_, client):
        await client.initialize()
        await client.send_raw(line + b"\n")
        error = (await client.response(answered_as))["error"]
        assert error["code"] == code and words in error["message"]
        assert (await client.request("ping"))["result"] == {}


async def test_deeply_nested_json_from_a_server_is_skipped_and_it_stays_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def deep(session: FakeSession, args: dict[str, Any]) -> Any:
        await session.send_raw(b'{"jsonrpc":"2.0","method":"notifications/message","params":' + DEEP + b"}\n")
        return await echo(session, args)

    server = FakeServer("solo", tools={"deep": deep})
    async with running_gateway(make_config("solo"), server) as (gateway, client):
        await client.initialize()
        result = await client.result("tools/call", {"name": "deep", "arguments": {"text": "after"}})
        assert result["content"][0]["text"] == "after"
        assert gateway.root.status("upstreams").restarts == 0 and len(server.sessions) == 1


async def test_invalid_request_is_32600_with_the_salvaged_id(autojump_clock: trio.testing.MockClock) -> None:
    async with running_gateway(make_config("solo"), FakeServer("solo")) as (_, client):
        await client.initialize()
        await client.send({"jsonrpc": "2.0", "id": "abc", "method": 42})
        error = (await client.response("abc"))["error"]
        assert error["code"] == -32600 and "method" in error["message"]
        await client.send({"jsonrpc": "2.0", "id": 5, "method": "x", "result": {}})
        error = (await client.response(5))["error"]
        assert error["code"] == -32600 and "both a method and a result" in error["message"]


async def test_batch_is_rejected_with_32600(autojump_clock: trio.testing.MockClock) -> None:
    async with running_gateway(make_config("solo"), FakeServer("solo")) as (_, client):
        await client.initialize()
        await client.send_raw(b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]\n')
        error = (await client.response(None))["error"]
        assert error["code"] == -32600 and "batch" in error["message"]


@pytest.mark.parametrize("method", ["tools/call", "tools/list", "resources/read", "initialize"])
async def test_params_that_are_not_an_object_are_32602(
    autojump_clock: trio.testing.MockClock, method: str
) -> None:
    async with running_gateway(make_config("solo"), FakeServer("solo")) as (_, client):
        await client.initialize()
        await client.send({"jsonrpc": "2.0", "id": 7, "method": method, "params": [1, 2]})
        error = (await client.response(7))["error"]
        assert error["code"] == -32602 and "must be an object" in error["message"]


async def test_tools_call_without_a_name_is_32602(autojump_clock: trio.testing.MockClock) -> None:
    solo = FakeServer("solo", tools={"echo": echo})
    async with running_gateway(make_config("solo"), solo) as (_, client):
        await client.initialize()
        error = (await client.request("tools/call", {"arguments": {}}))["error"]
        assert error == {"code": -32602, "message": "params.name is required"}
        error = (await client.request("tools/call", {"name": 3}))["error"]
        assert error == {"code": -32602, "message": "params.name must be a string"}
        assert "tools/call" not in solo.session.methods()


async def test_uri_routes_need_a_uri(autojump_clock: trio.testing.MockClock) -> None:
    async with running_gateway(make_config("solo"), FakeServer("solo")) as (_, client):
        await client.initialize()
        error = (await client.request("resources/read", {}))["error"]
        assert error == {"code": -32602, "message": "params.uri is required"}


async def test_list_with_a_cursor_is_32602(autojump_clock: trio.testing.MockClock) -> None:
    async with running_gateway(make_config("solo"), FakeServer("solo")) as (_, client):
        await client.initialize()
        error = (await client.request("tools/list", {"cursor": "2"}))["error"]
        assert error["code"] == -32602 and "invalid cursor" in error["message"]


async def test_unknown_server_prefix_is_32602_listing_servers(autojump_clock: trio.testing.MockClock) -> None:
    alpha, beta = FakeServer("alpha"), FakeServer("beta")
    async with running_gateway(make_config("alpha", "beta"), alpha, beta) as (_, client):
        await client.initialize()
        error = (await client.request("tools/call", {"name": "gamma__echo"}))["error"]
        assert error["code"] == -32602
        assert error["message"] == "unknown tool 'gamma__echo' (known servers: alpha, beta)"
        assert error["data"]["knownServers"] == ["alpha", "beta"]
        error = (await client.request("resources/read", {"uri": "file:///x"}))["error"]
        assert error["message"] == "unknown resource 'file:///x' (known servers: alpha, beta)"


async def test_unneeded_notifications_are_ignored_silently(autojump_clock: trio.testing.MockClock) -> None:
    solo = FakeServer("solo")
    async with running_gateway(make_config("solo"), solo) as (_, client):
        await client.initialize()
        await client.notify("notifications/roots/list_changed")
        await client.notify("notifications/cancelled", {"requestId": None})
        await client.notify("notifications/whatever", {"x": 1})
        assert (await client.request("ping"))["result"] == {}
        await trio.sleep(1)
        assert client.responses == {} and client.notifications == []
        assert solo.session.methods() == ["initialize", "notifications/initialized", "tools/list"]


# --- namespacing through the gateway ------------------------------------------------------------


def _catalogue(name: str, **kwargs: Any) -> FakeServer:
    return FakeServer(
        name,
        tools={"echo": echo, "add": echo},
        prompts=["greet"],
        resources=[f"file:///{name}.txt"],
        capabilities={"tools": {}, "prompts": {}, "resources": {"subscribe": True}, "completions": {}},
        **kwargs,
    )


async def test_lists_are_merged_in_config_order_with_prefixes(autojump_clock: trio.testing.MockClock) -> None:
    # beta is listed first in the config although alpha answers just as fast
    alpha, beta = _catalogue("alpha"), _catalogue("beta")
    async with running_gateway(make_config("beta", "alpha"), alpha, beta) as (_, client):
        await client.initialize()
        tools = (await client.result("tools/list"))["tools"]
        assert [t["name"] for t in tools] == ["beta__echo", "beta__add", "alpha__echo", "alpha__add"]
        assert tools[0]["inputSchema"] == {"type": "object"}
        prompts = (await client.result("prompts/list"))["prompts"]
        assert [p["name"] for p in prompts] == ["beta__greet", "alpha__greet"]
        resources = (await client.result("resources/list"))["resources"]
        assert [(r["uri"], r["name"]) for r in resources] == [
            ("beta+file:///beta.txt", "file:///beta.txt"),
            ("alpha+file:///alpha.txt", "file:///alpha.txt"),
        ]
        templates = (await client.result("resources/templates/list"))["resourceTemplates"]
        assert [t["uriTemplate"] for t in templates] == ["beta+tpl://{id}", "alpha+tpl://{id}"]


async def test_upstream_pagination_is_followed_to_the_end(autojump_clock: trio.testing.MockClock) -> None:
    paged = FakeServer("paged", tools={f"t{i}": echo for i in range(5)}, page_size=2)
    async with running_gateway(make_config("paged"), paged) as (_, client):
        await client.initialize()
        result = await client.result("tools/list")
        assert [t["name"] for t in result["tools"]] == ["t0", "t1", "t2", "t3", "t4"]
        assert "nextCursor" not in result
        cursors = [m.get("params", {}).get("cursor") for m in paged.session.requests("tools/list")]
        assert cursors == [None, "2", "4"]


async def test_resource_calls_route_by_prefix_and_upstream_sees_its_own_uri(
    autojump_clock: trio.testing.MockClock,
) -> None:
    alpha, beta = _catalogue("alpha"), _catalogue("beta")
    async with running_gateway(make_config("alpha", "beta"), alpha, beta) as (_, client):
        await client.initialize()
        read = await client.result("resources/read", {"uri": "beta+file:///beta.txt"})
        assert read == {"contents": [{"uri": "beta+file:///beta.txt", "text": "content of file:///beta.txt"}]}
        assert await client.result("resources/subscribe", {"uri": "beta+file:///beta.txt"}) == {}
        assert await client.result("resources/unsubscribe", {"uri": "beta+file:///beta.txt"}) == {}
        for method in ("resources/read", "resources/subscribe", "resources/unsubscribe"):
            assert [m["params"]["uri"] for m in beta.session.requests(method)] == ["file:///beta.txt"]
            assert alpha.session.requests(method) == []


async def test_prompts_get_routes_by_prefix(autojump_clock: trio.testing.MockClock) -> None:
    alpha, beta = _catalogue("alpha"), _catalogue("beta")
    async with running_gateway(make_config("alpha", "beta"), alpha, beta) as (_, client):
        await client.initialize()
        result = await client.result("prompts/get", {"name": "alpha__greet"})
        assert result["messages"][0]["content"]["text"] == "greet"
        assert [m["params"]["name"] for m in alpha.session.requests("prompts/get")] == ["greet"]
        assert beta.session.requests("prompts/get") == []


async def test_completion_routes_prompt_and_resource_refs_unprefixed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    alpha, beta = _catalogue("alpha"), _catalogue("beta")
    async with running_gateway(make_config("alpha", "beta"), alpha, beta) as (_, client):
        await client.initialize()
        argument = {"name": "x", "value": "a"}
        prompt_ref = {"type": "ref/prompt", "name": "beta__greet"}
        result = await client.result("completion/complete", {"ref": prompt_ref, "argument": argument})
        assert json.loads(result["completion"]["values"][0]) == {"type": "ref/prompt", "name": "greet"}
        resource_ref = {"type": "ref/resource", "uri": "alpha+tpl://{id}"}
        await client.result("completion/complete", {"ref": resource_ref, "argument": argument})
        assert [m["params"] for m in alpha.session.requests("completion/complete")] == [
            {"ref": {"type": "ref/resource", "uri": "tpl://{id}"}, "argument": argument}
        ]
        assert len(beta.session.requests("completion/complete")) == 1


@pytest.mark.parametrize(
    "ref",
    [None, "beta__greet", {"type": "ref/prompt"}, {"type": "ref/tool", "name": "beta__greet"}],
)
async def test_completion_with_a_bad_ref_is_32602(autojump_clock: trio.testing.MockClock, ref: Any) -> None:
    alpha, beta = _catalogue("alpha"), _catalogue("beta")
    async with running_gateway(make_config("alpha", "beta"), alpha, beta) as (_, client):
        await client.initialize()
        params = {"argument": {"name": "x", "value": ""}}
        if ref is not None:
            params["ref"] = ref
        error = (await client.request("completion/complete", params))["error"]
        assert error["code"] == -32602 and "params.ref must be" in error["message"]


async def test_single_server_mode_passes_names_and_uris_unchanged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    solo = _catalogue("default")
    async with running_gateway(make_config("default", single=True), solo) as (_, client):
        await client.initialize()
        assert [t["name"] for t in (await client.result("tools/list"))["tools"]] == ["echo", "add"]
        assert (await client.result("resources/list"))["resources"][0]["uri"] == "file:///default.txt"
        read = await client.result("resources/read", {"uri": "file:///default.txt"})
        assert read["contents"][0]["uri"] == "file:///default.txt"
        await client.result("tools/call", {"name": "echo", "arguments": {"text": "hi"}})
        assert solo.session.requests("tools/call")[0]["params"]["name"] == "echo"
        ref = {"type": "ref/prompt", "name": "greet"}
        await client.result("completion/complete", {"ref": ref, "argument": {"name": "a", "value": ""}})
        assert solo.session.requests("completion/complete")[0]["params"]["ref"] == ref


async def test_resource_links_in_tool_results_get_the_prefixed_uri(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def link(session: FakeSession, args: dict[str, Any]) -> Any:
        return {
            "content": [
                {"type": "resource_link", "uri": "file:///a.txt", "name": "a"},
                {"type": "resource", "resource": {"uri": "file:///b.txt", "text": "b"}},
                {"type": "text", "text": "uri: file:///c.txt"},
            ],
            "structuredContent": {"uri": "file:///untouched"},
        }

    linker, other = FakeServer("linker", tools={"link": link}), FakeServer("other")
    async with running_gateway(make_config("linker", "other"), linker, other) as (_, client):
        await client.initialize()
        result = await client.result("tools/call", {"name": "linker__link"})
        assert result["content"][0]["uri"] == "linker+file:///a.txt"
        assert result["content"][1]["resource"]["uri"] == "linker+file:///b.txt"
        assert result["content"][2]["text"] == "uri: file:///c.txt"
        assert result["structuredContent"] == {"uri": "file:///untouched"}


async def test_malformed_initialize_fields_are_treated_as_absent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_gateway(make_config("solo"), FakeServer("solo")) as (gateway, client):
        params = {"protocolVersion": ["2025-06-18"], "capabilities": 5, "clientInfo": "me"}
        result = await client.result("initialize", params)
        assert result["protocolVersion"] == "2025-11-25"
        assert (await client.request("ping"))["result"] == {}
        assert gateway.root.status("router").restarts == 0


async def test_malformed_cancel_notification_is_ignored(autojump_clock: trio.testing.MockClock) -> None:
    solo = FakeServer("solo", tools={"echo": echo})
    async with running_gateway(make_config("solo"), solo) as (gateway, client):
        await client.initialize()
        await client.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": [1]})
        await client.notify("notifications/cancelled", {"requestId": {"not": "an id"}})
        result = await client.result("tools/call", {"name": "echo", "arguments": {"text": "alive"}})
        assert result["content"][0]["text"] == "alive"
        assert gateway.root.status("router").restarts == 0
        assert solo.session.requests("notifications/cancelled") == []
