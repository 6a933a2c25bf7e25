"""Stdio servers in an OS sandbox (bubblewrap) with resource limits, as the real gateway starts
them (watchgate/sandbox.py, ADR-018). Skipped, saying why, where bwrap cannot run."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
import yaml

from tests.faults.harness import none_left
from tests.gateway.fakes import Client
from watchgate.config import parse_config
from watchgate.errors import exit_reason
from watchgate.gateway.tree import Gateway, audit_actor
from watchgate.transports import sandbox as sandbox_module

REPO = Path(__file__).resolve().parents[2]
PROBE = ["/usr/bin/python3", "-S", str(REPO / "tests" / "servers" / "probe.py")]
FILESYSTEM = str(REPO / "node_mcp" / "node_modules" / ".bin" / "mcp-server-filesystem")

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _needs_bwrap() -> None:
    problem = sandbox_module.bwrap_problem()
    if problem is not None:
        pytest.skip(f"no sandbox here: {problem}")


@asynccontextmanager
async def gateway_with(
    folder: Path, *upstreams: dict[str, Any], audit: str | None = None
) -> AsyncIterator[tuple[Gateway, Client]]:
    """A gateway on memory streams; ``audit``: the path of its audit log (none by default)."""
    document: dict[str, Any] = {"proxy": {"startup_wait": 10, "upstreams": list(upstreams)}}
    if audit is not None:
        document["audit"] = {"path": audit}
    config = parse_config(yaml.safe_dump(document), base_dir=str(folder))
    gateway = Gateway(config, audit=audit_actor(config) if audit is not None else None)
    to_gw_send, to_gw_receive = trio.testing.memory_stream_one_way_pair()
    to_client_send, to_client_receive = trio.testing.memory_stream_one_way_pair()
    client = Client(to_gw_send, to_client_receive)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(gateway.serve_stream, to_gw_receive, to_client_send)
            nursery.start_soon(client.pump)
            await client.initialize()
            yield gateway, client
            nursery.cancel_scope.cancel()  # stops every server, sandboxed or not


def probe(name: str, **keys: Any) -> dict[str, Any]:
    return {"name": name, "command": PROBE, "startup_timeout": 20, **keys}


def sandboxed(**keys: Any) -> dict[str, Any]:
    """The sandbox block with this repository readable (a clone may live under /tmp or ~)."""
    return {"enabled": True, **keys, "read_only": [str(REPO), *keys.get("read_only", ())]}


def text_of(response: dict[str, Any]) -> str:
    return "".join(block.get("text", "") for block in response["result"]["content"])


async def test_a_sandboxed_filesystem_server_cannot_read_outside_its_paths(tmp_path: Path) -> None:
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    (inside / "note.txt").write_text("visible")
    (outside / "secret.txt").write_text("top secret")
    fs = {"name": "fs", "command": [FILESYSTEM, "/"], "sandbox": sandboxed(paths=[str(inside)])}
    async with gateway_with(tmp_path, fs, probe("other")) as (_, client):  # no path_guard at all
        ok = await client.request(
            "tools/call", {"name": "fs__read_text_file", "arguments": {"path": str(inside / "note.txt")}}
        )
        assert text_of(ok) == "visible"
        denied = await client.request(
            "tools/call", {"name": "fs__read_text_file", "arguments": {"path": str(outside / "secret.txt")}}
        )
        assert "top secret" not in str(denied)
        assert denied.get("result", {}).get("isError") or "error" in denied


async def test_network_off_means_no_tcp_connection_even_to_loopback(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        offline = probe("offline", sandbox=sandboxed(network=False))
        online = probe("online", sandbox=sandboxed())
        async with gateway_with(tmp_path, offline, online) as (gateway, client):
            refused = await client.request(
                "tools/call", {"name": "offline__connect", "arguments": {"port": port}}
            )
            assert text_of(refused).startswith("refused:")
            connected = await client.request(
                "tools/call", {"name": "online__connect", "arguments": {"port": port}}
            )
            assert text_of(connected) == "connected"
            assert (gateway.upstreams["offline"].sandbox, gateway.upstreams["online"].sandbox) == (
                "bwrap net:off",
                "bwrap",
            )


async def test_credential_folders_are_hidden_even_inside_a_listed_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("PRIVATE KEY")
    (home / "notes.txt").write_text("mine")
    monkeypatch.setenv("HOME", str(home))
    async with gateway_with(tmp_path, probe("p", sandbox=sandboxed(paths=[str(home)])), probe("q")) as (
        _,
        client,
    ):
        assert (
            text_of(
                await client.request("tools/call", {"name": "p__read", "arguments": {"path": "~/notes.txt"}})
            )
            == "mine"
        )
        hidden = await client.request(
            "tools/call", {"name": "p__read", "arguments": {"path": "~/.ssh/id_rsa"}}
        )
        assert text_of(hidden).startswith("error:")
        home_hidden = await client.request(
            "tools/call", {"name": "q__read", "arguments": {"path": "~/notes.txt"}}
        )
        assert text_of(home_hidden) == "mine"  # q is not sandboxed: the default is off


async def test_the_daemons_socket_is_out_of_a_sandboxs_reach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sandboxed server cannot attach to the gateway that confines it (and call the servers
    it does not confine): the runtime directories are hidden, wherever they are."""
    runtime = Path(tempfile.mkdtemp(prefix="wg-rt-", dir="/var/tmp"))  # neither home nor /tmp
    try:
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
        monkeypatch.setenv("WATCHGATE_RUNTIME_DIR", str(runtime / "watchgate"))
        (runtime / "watchgate").mkdir(mode=0o700)
        (runtime / "watchgate" / "oauth.json").write_text("secret")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as control:
            control.bind(str(runtime / "watchgate" / "control.sock"))
            control.listen()
            async with gateway_with(tmp_path, probe("p", sandbox=sandboxed()), probe("q")) as (_, client):
                where = {"path": str(runtime / "watchgate" / "control.sock")}
                for name, expected in (("p", "refused:"), ("q", "connected")):
                    said = await client.request(
                        "tools/call", {"name": f"{name}__connect_unix", "arguments": where}
                    )
                    assert text_of(said).startswith(expected), (name, said)
                hidden = await client.request(
                    "tools/call",
                    {"name": "p__read", "arguments": {"path": str(runtime / "watchgate" / "oauth.json")}},
                )
                assert text_of(hidden).startswith("error:")
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


async def test_the_audit_log_is_out_of_a_sandboxs_reach_wherever_it_is(tmp_path: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="wg-audit-", dir="/var/tmp"))  # neither home nor /tmp
    log = folder / "audit.jsonl"
    try:
        async with gateway_with(tmp_path, probe("p", sandbox=sandboxed()), probe("q"), audit=str(log)) as (
            _,
            client,
        ):
            for name, hidden in (("p", True), ("q", False)):
                said = await client.request(
                    "tools/call", {"name": f"{name}__read", "arguments": {"path": str(log)}}
                )
                assert text_of(said).startswith("error:") == hidden, (name, said)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def test_a_setsid_grandchild_dies_with_the_sandbox(tmp_path: Path) -> None:
    marker = f"wg-sandbox-{tmp_path.name}"
    async with gateway_with(tmp_path, probe("p", sandbox=sandboxed()), probe("q")) as (_, client):
        assert (
            text_of(await client.request("tools/call", {"name": "p__spawn", "arguments": {"marker": marker}}))
            == "spawned"
        )
    assert await none_left(marker) == []


async def test_a_server_over_its_memory_limit_is_restarted_and_ps_says_why(tmp_path: Path) -> None:
    hungry = probe("hungry", limits={"memory": "100M"}, backoff={"initial": 0.1, "max": 0.2})
    async with gateway_with(tmp_path, hungry, probe("q")) as (gateway, client):
        small = await client.request("tools/call", {"name": "hungry__alloc", "arguments": {"mb": 10}})
        assert text_of(small) == f"allocated {10 * 1024 * 1024}"
        big = await client.request("tools/call", {"name": "hungry__alloc", "arguments": {"mb": 400}})
        assert big["error"]["code"] == -32003
        with trio.fail_after(20):
            while (
                gateway.upstream_supervisor.status("hungry").state != "running"
                or gateway.upstream_supervisor.status("hungry").restarts < 1
            ):
                await trio.sleep(0.05)
        assert (exit_reason(gateway.upstream_supervisor.status("hungry").last_exit) or "").startswith(
            "over its memory limit (100M)"
        )


async def test_without_bwrap_a_sandboxed_server_does_not_start_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox_module.shutil, "which", lambda name: None)
    sandbox_module.bwrap_problem.cache_clear()
    try:
        strict = probe("strict", sandbox=sandboxed(), max_restarts=0)
        lenient = probe("lenient", sandbox=sandboxed(required=False))
        async with gateway_with(tmp_path, strict, lenient) as (gateway, client):
            refused = await client.request(
                "tools/call", {"name": "strict__read", "arguments": {"path": "/etc/hostname"}}
            )
            assert refused["error"]["code"] == -32003
            assert "sandbox: bwrap is not installed; install bubblewrap" in refused["error"]["message"]
            assert gateway.upstreams["lenient"].sandbox == "UNSANDBOXED"
            assert "result" in await client.request(
                "tools/call", {"name": "lenient__read", "arguments": {"path": "/etc/hostname"}}
            )
    finally:
        sandbox_module.bwrap_problem.cache_clear()
