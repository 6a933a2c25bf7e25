"""The message-path seam (``watchgate/hooks.py``): where hooks are called, with what context, and
that every call that entered ``on_request`` ends in exactly one ``on_response``."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from msgspec import UNSET, Raw

import watchgate.gateway.router.forwarding
from tests.gateway.fakes import FakeServer, FakeSession, crash, echo, hang, make_config, running_gateway, text
from tests.plugins.helpers import gateway_with_hooks
from watchgate.errors import JsonRpcError, PolicyDenied
from watchgate.hooks import CallContext, Decision, HookChain, cancelled_response
from watchgate.protocol import jsonrpc
from watchgate.protocol.jsonrpc import Message


class Spy:
    """A MessageHooks that records every call, and can deny, fail, change or hide on request."""

    def __init__(self, name: str = "spy", **behaviour: Any) -> None:
        self.hook_name = name
        self.behaviour = behaviour
        self.calls: list[tuple[str, Any, Any]] = []

    def _fail(self, stage: str) -> None:
        if stage in self.behaviour.get("fail", ()):
            raise RuntimeError("a bug in the hook")

    async def on_request(self, ctx: CallContext, msg: Message) -> Message:
        self.calls.append(("request", ctx, msg))
        self._fail("request")
        if self.behaviour.get("deny"):
            raise PolicyDenied(self.hook_name, "not this one")
        return msg

    async def on_response(self, ctx: CallContext, msg: Message) -> Message:
        self.calls.append(("response", ctx, msg))
        self._fail("response")
        mark = self.behaviour.get("mark")
        if mark and msg.result is not UNSET:
            result = jsonrpc.load(msg.result)
            result["marked"] = mark
            return msg.with_result(jsonrpc.raw(result))
        return msg

    async def on_notification(self, upstream: str, server: str | None, msg: Message) -> Message | None:
        self.calls.append(("notification", (upstream, server), msg))
        self._fail("notification")
        return None if self.behaviour.get("drop") else msg

    async def on_list(
        self, upstream: str, server: str | None, kind: str, items: list[dict[str, Raw]]
    ) -> list[dict[str, Raw]]:
        self.calls.append(
            ("list", (upstream, server, kind), [json.loads(bytes(i.get("name", b'""'))) for i in items])
        )
        self._fail("list")
        hide = self.behaviour.get("hide", ())
        return [i for i in items if json.loads(bytes(i.get("name", b'""'))) not in hide]

    def of(self, stage: str) -> list[tuple[Any, Any]]:
        return [(ctx, msg) for kind, ctx, msg in self.calls if kind == stage]


def body(msg: Message) -> Any:
    return jsonrpc.load(msg.result if msg.result is not UNSET else msg.error)


async def link(session: FakeSession, args: dict[str, Any]) -> Any:
    return {"content": [{"type": "resource_link", "uri": "file:///x", "name": "x"}]}


async def test_without_hooks_no_context_is_built(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(**kwargs: Any) -> None:
        raise AssertionError("a CallContext was built without hooks")

    monkeypatch.setattr(watchgate.gateway.router.forwarding, "CallContext", forbidden)
    solo = FakeServer("solo", tools={"echo": echo})
    async with running_gateway(make_config("solo"), solo) as (gateway, client):
        await client.initialize()
        assert gateway.hooks.empty and gateway.plugins is None
        assert (await client.result("tools/call", {"name": "echo", "arguments": {"text": "x"}})) == text("x")


async def test_request_context_and_response_after_the_rewrite(autojump_clock: trio.testing.MockClock) -> None:
    alpha = FakeServer("alpha", tools={"link": link})
    beta = FakeServer("beta", tools={"echo": echo})
    spy = Spy(mark="seen")
    async with gateway_with_hooks(make_config("alpha", "beta"), alpha, beta, hooks=HookChain([spy])) as (
        _,
        attach,
    ):
        client = await attach()
        await client.initialize()
        params = {"name": "alpha__link", "arguments": {"a": 1}}
        response = await client.response(await client.start("tools/call", params, request_id="r-1"))
        assert response["result"]["marked"] == "seen"
        assert response["result"]["content"][0]["uri"] == "alpha+file:///x"
        [(ctx, request)] = spy.of("request")
        assert isinstance(ctx, CallContext)
        assert (ctx.server, ctx.upstream, ctx.method, ctx.name, ctx.public_name) == (
            "alpha",
            "alpha",
            "tools/call",
            "link",
            "alpha__link",
        )
        forwarded = b'{"name":"link","arguments":{"a": 1}}'  # renamed; the rest as the client wrote it
        assert ctx.request_id == "r-1" and ctx.request_bytes == len(forwarded)
        assert ctx.client_id > 0 and ctx.started <= trio.current_time() and ctx.decisions == []
        assert jsonrpc.load(request.params)["name"] == "link"  # hooks see the upstream's own name
        [(same, answer)] = spy.of("response")
        assert same is ctx and answer.id == "r-1" and body(answer)["content"][0]["uri"] == "alpha+file:///x"


async def test_every_routed_method_gets_a_context(autojump_clock: trio.testing.MockClock) -> None:
    alpha = FakeServer(
        "alpha",
        tools={"echo": echo},
        prompts=["greet"],
        resources=["file:///r"],
        capabilities={"tools": {}, "prompts": {}, "resources": {"subscribe": True}, "completions": {}},
    )
    beta = FakeServer("beta", tools={"echo": echo})
    spy = Spy()
    async with gateway_with_hooks(make_config("alpha", "beta"), alpha, beta, hooks=HookChain([spy])) as (
        _,
        attach,
    ):
        client = await attach()
        await client.initialize()
        await client.result("prompts/get", {"name": "alpha__greet"})
        await client.result("resources/read", {"uri": "alpha+file:///r"})
        await client.result("resources/subscribe", {"uri": "alpha+file:///r"})
        await client.result("resources/unsubscribe", {"uri": "alpha+file:///r"})
        await client.result(
            "completion/complete",
            {"ref": {"type": "ref/prompt", "name": "alpha__greet"}, "argument": {"name": "a", "value": ""}},
        )
        await client.result(
            "completion/complete",
            {
                "ref": {"type": "ref/resource", "uri": "alpha+file:///r"},
                "argument": {"name": "a", "value": ""},
            },
        )
        seen = [(ctx.method, ctx.name, ctx.public_name) for ctx, _ in spy.of("request")]
        assert seen == [
            ("prompts/get", "greet", "alpha__greet"),
            ("resources/read", "file:///r", "alpha+file:///r"),
            ("resources/subscribe", "file:///r", "alpha+file:///r"),
            ("resources/unsubscribe", "file:///r", "alpha+file:///r"),
            ("completion/complete", "greet", "alpha__greet"),
            ("completion/complete", "file:///r", "alpha+file:///r"),
        ]
        assert [ctx for ctx, _ in spy.of("response")] == [ctx for ctx, _ in spy.of("request")]


async def test_single_server_mode_shows_no_server_name(autojump_clock: trio.testing.MockClock) -> None:
    solo = FakeServer("default", tools={"echo": echo})
    spy = Spy()
    async with gateway_with_hooks(make_config("default", single=True), solo, hooks=HookChain([spy])) as (
        _,
        attach,
    ):
        client = await attach()
        await client.initialize()
        await client.result("tools/call", {"name": "echo"})
        await solo.session.notify("notifications/message", {"level": "info", "data": "hi"})
        await client.wait_for(lambda: bool(client.notified("notifications/message")))
        [(ctx, _)] = spy.of("request")
        assert (ctx.server, ctx.upstream, ctx.name, ctx.public_name) == (None, "default", "echo", "echo")
        assert spy.of("notification")[0][0] == ("default", None)
        assert ("default", None, "tools") in [where for where, _ in spy.of("list")]


async def test_a_denial_answers_the_client_and_still_ends_in_one_response(
    autojump_clock: trio.testing.MockClock,
) -> None:
    solo = FakeServer("solo", tools={"echo": echo})
    first, denier, last = Spy("first"), Spy("denier", deny=True), Spy("last")
    async with gateway_with_hooks(make_config("solo"), solo, hooks=HookChain([first, denier, last])) as (
        _,
        attach,
    ):
        client = await attach()
        await client.initialize()
        error = (await client.request("tools/call", {"name": "echo"}))["error"]
        assert error == {
            "code": -32010,
            "message": "blocked by plugin 'denier': not this one",
            "data": {"plugin": "denier", "reason": "not this one"},
        }
        assert solo.session.requests("tools/call") == []
        assert (len(first.of("request")), len(denier.of("request")), len(last.of("request"))) == (1, 1, 0)
        for spy in (first, denier, last):
            [(_, answer)] = spy.of("response")
            assert body(answer)["code"] == -32010


async def test_a_failing_hook_fails_closed_at_every_point(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    alpha = FakeServer("alpha", tools={"echo": echo})
    beta = FakeServer("beta", tools={"echo": echo})
    buggy = Spy("buggy", fail=("request",))
    config = make_config("alpha", "beta")
    async with gateway_with_hooks(config, alpha, beta, hooks=HookChain([buggy])) as (gateway, attach):
        client = await attach()
        await client.initialize()
        error = (await client.request("tools/call", {"name": "alpha__echo"}))["error"]
        assert error["code"] == -32010
        assert error["message"] == "blocked by plugin 'buggy': internal error in the gateway's message hook"
        buggy.behaviour["fail"] = ("response", "notification", "list")
        error = (await client.request("tools/call", {"name": "alpha__echo"}))["error"]
        assert error["code"] == -32010 and "buggy" in error["message"]
        await alpha.session.notify("notifications/message", {"level": "info", "data": "dropped"})
        await alpha.session.notify("notifications/tools/list_changed")
        await client.wait_for(lambda: gateway.router.tool_count("alpha") == 0)
        assert client.notified("notifications/message") == []
    assert "a bug in the hook" in caplog.text


async def test_notifications_pass_the_hooks_and_may_be_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def report(session: FakeSession, args: dict[str, Any]) -> Any:
        received = session.requests("tools/call")[-1]
        token = received["params"]["_meta"]["progressToken"]
        await session.notify("notifications/progress", {"progressToken": token, "progress": 1})
        return text("done")

    alpha = FakeServer("alpha", tools={"report": report})
    beta = FakeServer("beta", tools={"echo": echo})
    spy = Spy()
    async with gateway_with_hooks(make_config("alpha", "beta"), alpha, beta, hooks=HookChain([spy])) as (
        _,
        attach,
    ):
        client = await attach()
        await client.initialize()
        await client.result("tools/call", {"name": "alpha__report", "_meta": {"progressToken": "p"}})
        await alpha.session.notify("notifications/message", {"level": "info", "data": "kept"})
        await client.wait_for(lambda: bool(client.notified("notifications/message")))
        progress, message = spy.of("notification")
        assert progress[0] == ("alpha", "alpha") and jsonrpc.load(progress[1].params)["progressToken"] == "p"
        assert jsonrpc.load(message[1].params)["_meta"] == {"watchgate/server": "alpha"}  # after the rewrite
        assert [n["params"]["progress"] for n in client.notified("notifications/progress")] == [1]
        spy.behaviour["drop"] = True
        await client.result("tools/call", {"name": "alpha__report", "_meta": {"progressToken": "q"}})
        await alpha.session.notify("notifications/message", {"level": "info", "data": "dropped"})
        await alpha.session.notify("notifications/tools/list_changed")  # not a notification for hooks
        await client.wait_for(lambda: len(spy.of("notification")) == 4)
        await trio.sleep(1)
        assert len(client.notified("notifications/message")) == 1
        assert len(client.notified("notifications/progress")) == 1


async def test_lists_pass_the_hooks_with_own_names_before_the_cache(
    autojump_clock: trio.testing.MockClock,
) -> None:
    alpha = FakeServer("alpha", tools={"echo": echo, "secret": echo})
    beta = FakeServer("beta", tools={"echo": echo})
    spy = Spy(hide=("secret",))
    async with gateway_with_hooks(make_config("alpha", "beta"), alpha, beta, hooks=HookChain([spy])) as (
        gateway,
        attach,
    ):
        client = await attach()
        await client.initialize()
        names = [t["name"] for t in (await client.result("tools/list"))["tools"]]
        assert names == ["alpha__echo", "beta__echo"]
        assert (("alpha", "alpha", "tools"), ["echo", "secret"]) in spy.of("list")
        assert [own for _, _, own in gateway.router.tool_names("alpha")] == ["echo"]
        # hidden is not unreachable by itself: the name still routes by prefix (plugins deny it)
        await client.result("tools/call", {"name": "alpha__secret"})
        assert spy.of("request")[0][0].name == "secret"


async def test_calls_ending_without_an_answer_still_reach_on_response(
    autojump_clock: trio.testing.MockClock,
) -> None:
    flaky = FakeServer("flaky", tools={"hang": hang, "crash": crash, "echo": echo})
    other = FakeServer("other", tools={"echo": echo, "hang": hang})
    spy = Spy()
    config = make_config("flaky", "other", request_timeout=5, backoff={"initial": 50, "max": 50, "jitter": 0})
    async with gateway_with_hooks(config, flaky, other, hooks=HookChain([spy])) as (gateway, attach):
        client = await attach()
        await client.initialize()
        timed_out = await client.request("tools/call", {"name": "flaky__hang"})
        assert timed_out["error"]["code"] == -32001
        cancelled = await client.start("tools/call", {"name": "flaky__hang"})
        await client.wait_for(lambda: gateway.upstreams["flaky"].in_flight == 1)
        await client.notify("notifications/cancelled", {"requestId": cancelled})
        await client.wait_for(lambda: gateway.upstreams["flaky"].in_flight == 0)
        crashed = await client.request("tools/call", {"name": "flaky__crash"})
        assert crashed["error"]["code"] == -32003
        await client.wait_for(lambda: gateway.router.view("flaky").state == "backoff")
        down = await client.request("tools/call", {"name": "flaky__echo"})
        assert down["error"]["code"] == -32003 and "backoff" in down["error"]["message"]
        leaver = await attach()
        await leaver.initialize()
        await leaver.response(await leaver.start("tools/call", {"name": "other__echo"}))  # answered
        await leaver.start("tools/call", {"name": "flaky__echo"})  # refused: flaky is down
        await leaver.start("tools/call", {"name": "other__hang"})
        await leaver.wait_for(lambda: gateway.upstreams["other"].in_flight == 1)
        await leaver.close()
        await client.wait_for(lambda: gateway.upstreams["other"].in_flight == 0)
        await client.wait_for(lambda: len(spy.of("response")) == 7)
        codes = [
            (ctx.public_name, jsonrpc.load(msg.error)["code"] if msg.is_error else "ok")
            for ctx, msg in spy.of("response")
        ]
        assert codes[:4] == [
            ("flaky__hang", -32001),
            ("flaky__hang", -32800),
            ("flaky__crash", -32003),
            ("flaky__echo", -32003),
        ]
        # the leaver's three calls end in any order: answered, refused, cancelled when it left
        assert sorted(codes[4:], key=str) == [
            ("flaky__echo", -32003),
            ("other__echo", "ok"),
            ("other__hang", -32800),
        ]
        assert sorted(id(ctx) for ctx, _ in spy.of("response")) == sorted(
            id(ctx) for ctx, _ in spy.of("request")
        )
        assert cancelled not in client.responses


async def test_a_request_queued_while_a_start_fails_ends_in_on_response(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def never_answer(session: FakeSession) -> None:
        await trio.sleep_forever()

    mute = FakeServer("mute", tools={"echo": echo}, on_initialize=never_answer)
    spy = Spy()
    config = make_config(
        "mute", startup_timeout=5, startup_wait=1, backoff={"initial": 50, "max": 50, "jitter": 0}
    )
    async with gateway_with_hooks(config, mute, hooks=HookChain([spy])) as (_, attach):
        client = await attach()
        await client.initialize()
        error = (await client.request("tools/call", {"name": "echo"}))["error"]
        assert error["code"] == -32003
        [(_, answer)] = spy.of("response")
        assert body(answer)["code"] == -32003


async def test_a_subscription_refused_by_a_hook_holds_nothing(autojump_clock: trio.testing.MockClock) -> None:
    caps = {"tools": {}, "resources": {"subscribe": True}}
    alpha = FakeServer("alpha", tools={"echo": echo}, resources=["file:///r"], capabilities=caps)
    beta = FakeServer("beta", tools={"echo": echo})
    spy = Spy(deny=True)
    async with gateway_with_hooks(make_config("alpha", "beta"), alpha, beta, hooks=HookChain([spy])) as (
        _,
        attach,
    ):
        one, two = await attach(), await attach()
        await one.initialize()
        await two.initialize()
        assert (await one.request("resources/subscribe", {"uri": "alpha+file:///r"}))["error"][
            "code"
        ] == -32010
        spy.behaviour["deny"] = False
        assert await two.result("resources/subscribe", {"uri": "alpha+file:///r"}) == {}
        assert len(alpha.session.requests("resources/subscribe")) == 1  # the first real subscriber
        await alpha.session.notify("notifications/resources/updated", {"uri": "file:///r"})
        await two.wait_for(lambda: bool(two.notified("notifications/resources/updated")))
        await trio.sleep(1)
        assert one.notified("notifications/resources/updated") == []


async def test_a_subscription_to_a_server_that_is_down_holds_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    caps = {"tools": {}, "resources": {"subscribe": True}}
    alpha = FakeServer("alpha", tools={"crash": crash}, resources=["file:///r"], capabilities=caps)
    beta = FakeServer("beta", tools={"echo": echo})
    config = make_config("alpha", "beta", backoff={"initial": 50, "max": 50, "jitter": 0})
    async with running_gateway(config, alpha, beta) as (gateway, client):
        await client.initialize()
        await client.request("tools/call", {"name": "alpha__crash"})
        await client.wait_for(lambda: gateway.router.view("alpha").state == "backoff")
        assert (await client.request("resources/subscribe", {"uri": "alpha+file:///r"}))["error"][
            "code"
        ] == -32003
        assert gateway.router._interests.subscriptions.holders("alpha+file:///r") == frozenset()


# --- the chain on its own ------------------------------------------------------------------------


def _ctx() -> CallContext:
    return CallContext("s", "s", 1, "tools/call", "t", "s__t", 7, 0.0, 0)


async def test_the_chain_runs_hooks_in_order_and_passes_changes_along() -> None:
    class Renamer(Spy):
        async def on_request(self, ctx: CallContext, msg: Message) -> Message:
            await super().on_request(ctx, msg)
            return msg.with_params(jsonrpc.raw({"by": self.hook_name}))

        async def on_notification(self, upstream: str, server: str | None, msg: Message) -> Message | None:
            await super().on_notification(upstream, server, msg)
            return msg.with_params(jsonrpc.raw({"by": self.hook_name}))

    first, second = Renamer("first"), Renamer("second")
    chain = HookChain([first, second])
    assert not chain.empty
    out = await chain.on_request(_ctx(), jsonrpc.request(7, "tools/call", {}))
    assert jsonrpc.load(out.params) == {"by": "second"}
    assert jsonrpc.load(second.of("request")[0][1].params) == {"by": "first"}
    note = await chain.on_notification("s", "s", jsonrpc.notification("n", {}))
    assert note is not None and jsonrpc.load(note.params) == {"by": "second"}
    third = Spy("third")
    chain.set([Spy("dropper", drop=True), third])
    assert await chain.on_notification("s", None, jsonrpc.notification("n", {})) is None
    assert third.calls == []  # a dropped notification goes no further
    chain.set([])
    assert chain.empty


async def test_a_json_rpc_error_from_on_response_becomes_the_answer() -> None:
    class Refuser(Spy):
        async def on_response(self, ctx: CallContext, msg: Message) -> Message:
            raise JsonRpcError(-32011, "audit log unavailable")

    after = Spy("after")
    out = await HookChain([Refuser(), after]).on_response(_ctx(), jsonrpc.result_response(7, {}))
    assert out.id == 7 and body(out) == {"code": -32011, "message": "audit log unavailable"}
    assert body(after.of("response")[0][1])["code"] == -32011


def test_the_small_pieces() -> None:
    ctx = _ctx()
    assert body(cancelled_response(ctx, "by the client")) == {
        "code": -32800,
        "message": "request cancelled: by the client",
    }
    assert Decision("p", "request", "allow").enforced
    denied = PolicyDenied("secrets", "a secret in params.x")
    assert (denied.code, denied.plugin, denied.reason) == (-32010, "secrets", "a secret in params.x")
