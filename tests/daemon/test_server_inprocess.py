"""The daemon in this process on a real socket, with fake upstreams, driven by the real commands.

The commands are synchronous (each runs its own ``trio.run``), so they run in a worker thread,
exactly as a user's ``watchgate ps`` would in another process.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import pwd
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml
from trio_websocket import ConnectionRejected, HandshakeError, wrap_client_stream

from tests.gateway.fakes import FakeServer, echo, fake_connector, hang
from watchgate.cli import ps as ps_command
from watchgate.cli.main import main
from watchgate.config import load_config
from watchgate.daemon import control
from watchgate.daemon.client import call, connect, follow
from watchgate.daemon.paths import RUNTIME_ENV, RuntimePaths
from watchgate.daemon.server import Daemon
from watchgate.errors import ControlError, DaemonAlreadyRunning
from watchgate.listeners.endpoints import ATTACH_PATH


def _write(
    path: Path, *names: str, profiles: dict[str, Any] | None = None, extra: dict[str, Any] | None = None
) -> None:
    upstreams = [
        {"name": name, "command": ["fake"], "backoff": {"initial": 0.1, "max": 0.1}} for name in names
    ]
    document: dict[str, Any] = {"proxy": {"startup_wait": 5, "upstreams": upstreams}}
    if profiles:
        document["profiles"] = profiles
    document.update(extra or {})
    path.write_text(yaml.safe_dump(document))


@asynccontextmanager
async def daemon_with(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    *servers: FakeServer,
    profiles: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[Daemon, Callable[..., Any]]]:
    runtime = Path(tempfile.mkdtemp(prefix="wg-", dir="/tmp"))
    monkeypatch.setenv(RUNTIME_ENV, str(runtime))
    config_path = tmp_path / "watchgate.yaml"
    _write(config_path, *(s.name for s in servers), profiles=profiles, extra=extra)
    daemon = Daemon(
        load_config(config_path),
        RuntimePaths(runtime),
        config_path=config_path,
        connector=fake_connector(*servers),
    )

    async def cli(*args: str) -> int:
        code: int = await trio.to_thread.run_sync(main, list(args))
        return code

    try:
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                await nursery.start(daemon.serve)
                yield daemon, cli
                daemon.request_shutdown(grace=1)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


async def test_the_commands_against_a_running_daemon(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alpha, beta = FakeServer("alpha", tools={"echo": echo}), FakeServer("beta", tools={"echo": echo})
    async with daemon_with(monkeypatch, tmp_path, alpha, beta) as (daemon, cli):
        assert await cli("ps") == 0
        table = capsys.readouterr().out.splitlines()
        assert table[0].split()[:3] == ["NAME", "TRANSPORT", "STATE"]
        assert table[-1].startswith("audit: ok, ") and table[-1].endswith("watchgate-audit.jsonl")
        assert [line.split()[:3] for line in table[1:-1]] == [
            ["alpha", "stdio", "running"],
            ["beta", "stdio", "running"],
        ]

        assert await cli("ps", "--json") == 0
        report = json.loads(capsys.readouterr().out)
        assert [u["tools"] for u in report["upstreams"]] == [1, 1] and report["multi_server"] is True

        assert await cli("ps", "--tools", "alpha") == 0
        assert "alpha__echo" in capsys.readouterr().out
        assert await cli("ps", "--tools", "alpha", "--json") == 0
        assert json.loads(capsys.readouterr().out) == [
            {"name": "alpha__echo", "upstream_name": "echo", "shortened": False}
        ]
        assert await cli("ps", "--clients") == 0
        assert capsys.readouterr().out.split() == [
            "ID",
            "CLIENT",
            "PID/ADDRESS",
            "ATTACHED",
            "IN-FLIGHT",
            "PROFILE",
            "WHO",
        ]

        assert await cli("stop", "alpha") == 0
        assert capsys.readouterr().out == "alpha: stopped\n"
        assert await cli("start", "alpha") == 0
        assert capsys.readouterr().out == "alpha: running\n"
        assert await cli("restart", "--all") == 0
        assert capsys.readouterr().out == "alpha: running\nbeta: running\n"
        assert await cli("stop", "--all") == 0
        assert capsys.readouterr().out == "alpha: stopped\nbeta: stopped\n"
        assert await cli("start", "--all") == 0
        assert capsys.readouterr().out == "alpha: running\nbeta: running\n"
        assert len(alpha.sessions) == 4
        assert await cli("restart") == 2
        assert "name a server" in capsys.readouterr().err
        assert await cli("stop", "gamma") == 1
        assert "unknown server 'gamma' (known: alpha, beta)" in capsys.readouterr().err

        assert await cli("logs", "alpha", "-n", "3") == 0
        logs = capsys.readouterr().out.splitlines()
        assert len(logs) == 3 and logs[-1].endswith("event: started")
        assert await cli("logs", "gamma") == 1
        assert "unknown server 'gamma'" in capsys.readouterr().err

        _write(daemon.config_path, "beta", "gamma")  # type: ignore[arg-type]
        gamma = FakeServer("gamma")
        daemon.gateway._connector = fake_connector(alpha, beta, gamma)
        assert await cli("reload") == 0
        assert (
            capsys.readouterr().out
            == "added: gamma\nremoved: alpha\nchanged (restarted): -\nunchanged: beta\n"
        )

        assert await cli("down", "--grace", "1") == 0
        assert capsys.readouterr().out == "watchgate: daemon stopped\n"
    assert not daemon.paths.socket.exists() and not daemon.paths.pid_file.exists()


async def test_logs_follow_streams_new_lines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    alpha = FakeServer("alpha")
    async with daemon_with(monkeypatch, tmp_path, alpha) as (daemon, _):
        batches: list[list[str]] = []

        def collect(lines: list[str]) -> bool:
            batches.append(lines)
            if len(batches) == 1:
                daemon.gateway.upstreams["alpha"].log.stderr("a fresh line")
            return len(batches) < 2

        await follow(daemon.paths, control.Logs(name="alpha", lines=1, follow=True), collect)
        assert batches[0][0].endswith("event: started")
        assert batches[1][0].endswith("stderr: a fresh line")

        # the follower went away (Ctrl-C): the next line ends only that stream, not the daemon
        daemon.gateway.upstreams["alpha"].log.stderr("written after the follower left")
        await trio.sleep(0.5)
        report = await call(daemon.paths, control.Ps())
        assert [u["state"] for u in report["upstreams"]] == ["running"]


async def test_bad_requests_and_wrong_paths_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async with daemon_with(monkeypatch, tmp_path, FakeServer("alpha")) as (daemon, _):
        async with connect(daemon.paths) as ws:
            await ws.send_message('{"op": "explode"}')
            reply = control.decode_reply(await ws.get_message())
        assert not reply.ok and "bad control request" in (reply.error or "")

        with pytest.raises(ControlError, match="unknown server 'nope'"):
            await call(daemon.paths, control.Tools(name="nope"))

        stream_ = await trio.open_unix_socket(str(daemon.paths.socket))
        rejected: BaseException | None = None
        try:  # the rejection surfaces from trio-websocket's reader task, so perhaps in a group
            async with stream_, trio.open_nursery() as nursery:
                await wrap_client_stream(nursery, stream_, "localhost", "/nope")
        except (ConnectionRejected, HandshakeError, BaseExceptionGroup) as exc:
            rejected = exc
        assert rejected is not None and "status_code=404" in repr(rejected)

        second = Daemon(daemon.config, daemon.paths, audit=False)
        with pytest.raises(DaemonAlreadyRunning, match="already running"):
            await second.bind()


async def test_reload_refuses_to_switch_modes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    async with daemon_with(monkeypatch, tmp_path, FakeServer("alpha"), FakeServer("beta")) as (daemon, _):
        _write(daemon.config_path, "alpha")  # type: ignore[arg-type]
        with pytest.raises(ControlError, match="carry their prefix"):
            await call(daemon.paths, control.Reload())
        daemon.config_path.write_text("proxy: {upstreams: []}\n")  # type: ignore[union-attr]
        with pytest.raises(ControlError, match=r"proxy\.upstreams"):
            await call(daemon.paths, control.Reload())
        assert [u.name for u in daemon.gateway.config.proxy.upstreams] == ["alpha", "beta"]


async def test_down_answers_calls_still_in_flight_with_32003(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    alpha = FakeServer("alpha", tools={"hang": hang})
    async with daemon_with(monkeypatch, tmp_path, alpha) as (daemon, _):
        stream_ = await trio.open_unix_socket(str(daemon.paths.socket))
        async with stream_, trio.open_nursery() as nursery:
            ws = await wrap_client_stream(nursery, stream_, "localhost", ATTACH_PATH)
            call_line = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "hang"}}
            await ws.send_message(json.dumps(call_line) + "\n")
            while daemon.gateway.upstreams["alpha"].in_flight == 0:
                await trio.sleep(0.01)
            daemon.request_shutdown(grace=0.2)
            answers = []
            with trio.fail_after(10):
                while not any(a.get("id") == 7 for a in answers):
                    message = await ws.get_message()
                    answers += [json.loads(line) for line in message.splitlines()]
            error = next(a for a in answers if a.get("id") == 7)["error"]
            assert error["code"] == -32003 and "shutting down" in error["message"]
            nursery.cancel_scope.cancel()


async def test_attach_with_another_config_refuses_to_join_the_running_daemon(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with daemon_with(monkeypatch, tmp_path, FakeServer("alpha")) as (daemon, cli):
        other = tmp_path / "other.yaml"
        _write(other, "beta")
        assert await cli("attach", "--no-start", "-c", str(other)) == 1
        err = capsys.readouterr().err
        assert err == (
            f"watchgate: the running daemon serves {daemon.config_path}, not {other}; attach without -c "
            "to use it, or `watchgate down` and attach again to start one on this config\n"
        )


async def test_pin_approve_makes_the_daemon_list_the_server_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alpha = FakeServer("alpha", tools={"echo": echo})
    async with daemon_with(monkeypatch, tmp_path, alpha) as (daemon, cli):
        monkeypatch.setenv("WATCHGATE_STATE_DIR", str(tmp_path))
        from watchgate.plugins.pins import PinStore

        PinStore(tmp_path / "watchgate-pins.json").observe("alpha", [{"name": "echo"}], trust_new=False)
        before = alpha.session.methods().count("tools/list")
        assert await cli("pin", "approve", "alpha__echo") == 0
        assert capsys.readouterr().out.splitlines()[-1] == (
            "calls use the approval at once; the daemon lists alpha again now"
        )
        while alpha.session.methods().count("tools/list") == before:
            await trio.sleep(0.01)
        assert await call(daemon.paths, control.Relist(names=["nope"])) == []


async def test_a_peer_of_another_uid_is_told_why_instead_of_hanging(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import watchgate.listeners.unix as listener_module
    from watchgate.errors import DaemonRefused

    async with daemon_with(monkeypatch, tmp_path, FakeServer("alpha")) as (daemon, _):
        monkeypatch.setattr(listener_module, "_peer_credentials", lambda stream: (1, 4242))
        with trio.fail_after(5), pytest.raises(DaemonRefused, match="belongs to another user"):
            await call(daemon.paths, control.Ps())
        monkeypatch.undo()
        monkeypatch.setenv(RUNTIME_ENV, str(daemon.paths.directory))
        assert (await call(daemon.paths, control.Ps()))["upstreams"][0]["name"] == "alpha"


async def test_a_malformed_hand_over_ends_only_that_connection(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import socket as stdlib_socket

    from watchgate.listeners import handoff

    async with daemon_with(monkeypatch, tmp_path, FakeServer("alpha")) as (daemon, _):
        for fds in ([0], []):  # one descriptor instead of two; none at all
            sock = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
            await sock.connect(str(daemon.paths.socket))
            await sock.sendmsg([handoff.HELLO], handoff.pack_fds(fds) if fds else [])
            with trio.fail_after(5):
                assert await sock.recv(1) == b""  # closed, not accepted
            sock.close()
        sock = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
        await sock.connect(str(daemon.paths.socket))
        sock.setsockopt(
            stdlib_socket.SOL_SOCKET, stdlib_socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        sock.close()  # gone before a word
        assert (await call(daemon.paths, control.Ps()))["upstreams"][0]["name"] == "alpha"


async def test_a_server_that_needs_a_login_says_so_in_ps_and_to_its_callers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from watchgate.errors import UpstreamAuthError

    hosted, local = FakeServer("hosted", tools={"echo": echo}), FakeServer("local", tools={"echo": echo})
    hosted.fail_start = UpstreamAuthError("needs login: run `watchgate auth login hosted`", needs_login=True)
    async with daemon_with(monkeypatch, tmp_path, hosted, local) as (_daemon, cli):
        assert await cli("ps") == 0
        rows = [line.split()[:3] for line in capsys.readouterr().out.splitlines()[1:-1]]
        assert rows == [["hosted", "stdio", "needs-login"], ["local", "stdio", "running"]]
        hosted.fail_start = None  # logged in: `auth login` asks the daemon to restart it
        assert await cli("restart", "hosted") == 0
        assert capsys.readouterr().out == "hosted: running\n"


async def test_ps_name_shows_one_server_in_full_and_watch_redraws(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alpha, beta = FakeServer("alpha", tools={"echo": echo}), FakeServer("beta")
    async with daemon_with(monkeypatch, tmp_path, alpha, beta) as (daemon, cli):
        assert await cli("ps", "alpha") == 0
        shown = capsys.readouterr().out
        head, *rest = shown.splitlines()
        assert head.split()[:4] == ["alpha", "running", "pid", str(alpha.session.pid)]
        fields = {line[2:12].strip(): line[13:] for line in rest if line[2:12].strip()}
        assert fields["transport"] == "stdio (MCP 2025-11-25, alpha 0)"
        assert fields["runs"] == "fake"
        assert fields["policy"].startswith("permanent, at most 5 restarts within 60 s")
        assert fields["tools"] == "1: alpha__echo"
        assert fields["processes"].startswith(str(alpha.session.pid))
        assert fields["events"].endswith("event: started")
        assert "\x1b[" not in shown  # not a terminal: no colours

        assert await cli("ps", "alpha", "--json") == 0
        detail = json.loads(capsys.readouterr().out)
        assert detail["row"]["name"] == "alpha" and detail["tools"] == ["alpha__echo"]
        assert await cli("ps", "gamma") == 1
        assert "unknown server 'gamma' (known: alpha, beta)" in capsys.readouterr().err

        watch = argparse.Namespace(name=None, json=False, tools=None, clients=False, watch=0.3)
        with trio.move_on_after(1.0):  # --watch redraws until stopped (Ctrl-C at a terminal)
            await ps_command._ps(watch, daemon.paths)
        assert capsys.readouterr().out.count("NAME  ") >= 3


_HELLO_LINES = (
    b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",'
    b'"capabilities":{},"clientInfo":{"name":"t","version":"1"}}}\n'
    b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'
    b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}\n'
)


def _tool_names(lines: bytes) -> list[str] | None:
    for line in lines.splitlines():
        message = json.loads(line)
        if message.get("id") == 2:
            return [tool["name"] for tool in message["result"]["tools"]]
    return None


async def test_attach_with_a_profile_by_hand_over_and_by_relay(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import os
    import socket as stdlib_socket

    from watchgate.errors import DaemonRefused
    from watchgate.listeners import handoff

    alpha, beta = FakeServer("alpha", tools={"echo": echo}), FakeServer("beta", tools={"echo": echo})
    profiles = {"only-alpha": {"servers": ["alpha"]}}
    async with daemon_with(monkeypatch, tmp_path, alpha, beta, profiles=profiles) as (daemon, _):
        async with connect(daemon.paths, f"{ATTACH_PATH}?profile=only-alpha") as ws:  # the relay
            await ws.send_message(_HELLO_LINES)
            received = b""
            while _tool_names(received) is None:
                received += await ws.get_message()  # type: ignore[operator]
        assert _tool_names(received) == ["alpha__echo"]
        with pytest.raises(DaemonRefused, match=r"unknown profile 'nope' \(known: only-alpha\)"):
            async with connect(daemon.paths, f"{ATTACH_PATH}?profile=nope"):
                pass

        async def hand_over(profile: bytes) -> tuple[trio.socket.SocketType, int, int]:
            client_in, gateway_in = os.pipe()
            gateway_out, client_out = os.pipe()
            sock = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
            await sock.connect(str(daemon.paths.socket))
            await sock.sendmsg(
                [handoff.HELLO_WITH_PROFILE + profile + b"\n"], handoff.pack_fds([client_in, client_out])
            )
            os.close(client_in)
            os.close(client_out)
            return sock, gateway_in, gateway_out

        sock, gateway_in, gateway_out = await hand_over(b"nope")
        with trio.fail_after(5):
            refusal = await sock.recv(200)
        assert refusal == handoff.REFUSED + b"unknown profile 'nope' (known: only-alpha)\n"
        sock.close()
        os.close(gateway_in)
        os.close(gateway_out)

        sock, gateway_in, gateway_out = await hand_over(b"only-alpha")
        with trio.fail_after(5):
            assert await sock.recv(1) == handoff.ACCEPTED
        os.write(gateway_in, _HELLO_LINES)
        received = b""
        with trio.fail_after(10):
            while _tool_names(received) is None:
                received += await trio.to_thread.run_sync(os.read, gateway_out, 65536)
        assert _tool_names(received) == ["alpha__echo"]
        report = await call(daemon.paths, control.Ps())
        assert [c["profile"] for c in report["clients"]] == ["only-alpha"]
        os.close(gateway_in)  # the client leaves
        with trio.fail_after(5):
            assert await sock.recv(1) == handoff.CLIENT_LEFT
        sock.close()
        os.close(gateway_out)


async def test_ps_says_starting_until_the_handshake_is_done(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server whose tools the gateway does not know yet is `starting`, not `running` with no
    tools."""
    answer = trio.Event()

    class SlowToList(FakeServer):
        async def _result(self, session: Any, method: str, params: dict[str, Any]) -> Any:
            if method == "tools/list":
                await answer.wait()
            return await super()._result(session, method, params)

    slow = SlowToList("slow", tools={"echo": echo})
    async with daemon_with(monkeypatch, tmp_path, slow) as (daemon, cli):
        report = await call(daemon.paths, control.Ps())
        assert [(u["name"], u["state"]) for u in report["upstreams"]] == [("slow", "starting")]
        assert report["listeners"] == [f"unix:{daemon.paths.socket}"]
        answer.set()
        with trio.fail_after(10):
            while (await call(daemon.paths, control.Ps()))["upstreams"][0]["state"] != "running":
                await trio.sleep(0.01)
        capsys.readouterr()
        assert await cli("ps") == 0
        assert "http:" not in capsys.readouterr().out  # no HTTP listener: no line for it


async def test_a_connection_from_another_uid_is_refused_and_logged(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    alpha = FakeServer("alpha", tools={"echo": echo})
    async with daemon_with(monkeypatch, tmp_path, alpha) as (daemon, _):
        real = os.getuid()
        with caplog.at_level(logging.WARNING, logger="watchgate.daemon"):
            monkeypatch.setattr(os, "getuid", lambda: real + 4242)  # the daemon's view: we are a stranger
            stream = await trio.open_unix_socket(str(daemon.paths.socket))
            async with stream:
                request = b"GET /control HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                request += b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                await stream.send_all(request)
                answer = await stream.receive_some(4096)
            monkeypatch.setattr(os, "getuid", lambda: real)
        assert answer.startswith(b"HTTP/1.1 403")
        assert f"refused a connection from uid {real}" in caplog.text


async def test_a_client_on_the_socket_is_the_user_the_kernel_says_it_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alpha = FakeServer("alpha", tools={"echo": echo})
    async with (
        daemon_with(monkeypatch, tmp_path, alpha) as (daemon, cli),
        connect(daemon.paths, ATTACH_PATH) as ws,
    ):
        await ws.send_message(_HELLO_LINES)
        with trio.fail_after(10):
            while not daemon.gateway.sessions():
                await trio.sleep(0.01)
        (session,) = daemon.gateway.sessions()
        me = pwd.getpwuid(os.getuid()).pw_name
        assert (session.client.principal.name, session.client.principal.proven_by) == (me, "uid")
        capsys.readouterr()
        assert await cli("ps", "--clients") == 0
        assert f"{me} (uid)" in capsys.readouterr().out


async def test_approvals_are_listed_and_decided_from_the_command_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alpha = FakeServer("alpha", tools={"echo": echo})
    rules = {"approvals": [{"tools": ["echo"], "ask": "console"}]}
    async with daemon_with(monkeypatch, tmp_path, alpha, extra=rules) as (daemon, cli):
        stream_ = await trio.open_unix_socket(str(daemon.paths.socket))
        async with stream_, trio.open_nursery() as nursery:
            ws = await wrap_client_stream(nursery, stream_, "localhost", ATTACH_PATH)
            for n in (1, 2):
                line = {
                    "jsonrpc": "2.0",
                    "id": n,
                    "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"text": f"<b>{n}</b>"}},
                }
                await ws.send_message(json.dumps(line) + "\n")
            while len(daemon.gateway.approvals.listing()) < 2:
                await trio.sleep(0.01)
            assert await cli("approvals") == 0
            table = capsys.readouterr().out.splitlines()
            assert table[0].split()[:4] == ["ID", "AGE", "SERVER", "TOOL"] and len(table) == 3
            assert await cli("approvals", "--json") == 0
            first, second = json.loads(capsys.readouterr().out)
            assert first["arguments"] == {"text": "<b>1</b>"} and first["principal"] == getpass.getuser()
            assert await cli("approvals", "approve", first["id"]) == 0
            assert await cli("approvals", "deny", second["id"], "--reason", "not now") == 0
            assert await cli("approvals", "approve", "nope") == 1
            assert "no call waits for approval 'nope'" in capsys.readouterr().err
            answers: dict[int, Any] = {}
            with trio.fail_after(10):
                while len(answers) < 2:
                    for each in (await ws.get_message()).splitlines():
                        message = json.loads(each)
                        answers[message["id"]] = message
            assert answers[1]["result"]["content"][0]["text"] == "<b>1</b>"
            assert "denied by " + getpass.getuser() in answers[2]["error"]["message"]
            assert alpha.session is not None and len(alpha.session.requests("tools/call")) == 1
            assert await cli("approvals") == 0
            assert capsys.readouterr().out == "no calls wait for approval\n"
            assert await cli("approvals", "forget") == 0
            assert capsys.readouterr().out == "forgot 0 remembered approvals\n"
            nursery.cancel_scope.cancel()


async def test_console_says_how_to_get_one_when_the_daemon_has_no_http_listener(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with daemon_with(monkeypatch, tmp_path, FakeServer("alpha")) as (_, cli):
        assert await cli("console") == 1
        assert "watchgate up --http" in capsys.readouterr().err
