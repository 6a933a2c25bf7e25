"""Who may talk to the listener: origins, bearer tokens, addresses; and /healthz."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx2 as httpx
import pytest
import trio
import yaml

from tests.gateway.fakes import FakeServer, echo, make_config
from tests.listeners.http.conftest import SSE_ACCEPT, LegacyClient, modern_headers, modern_request, serving
from watchgate.audit import AuditActor, resolved_audit_config
from watchgate.config import parse_config
from watchgate.config.schema import HttpListenerConfig, ListenerAuth, ListenerToken
from watchgate.errors import CannotListen
from watchgate.gateway.tree import Gateway
from watchgate.listeners.http import HttpListener
from watchgate.listeners.http import app as app_module

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t"}},
}
HEADERS = {"accept": SSE_ACCEPT, "content-type": "application/json"}


def token_file(tmp_path: Path, mode: int = 0o600) -> str:
    path = tmp_path / "token"
    path.write_text("s3cret\n")
    path.chmod(mode)
    return str(path)


async def test_a_page_of_another_origin_is_forbidden() -> None:
    async with serving(make_config("fx"), FakeServer("fx")) as (_, _, url), httpx.AsyncClient() as http:
        evil = await http.post(url, json=INIT, headers={**HEADERS, "origin": "http://evil.example"})
        assert evil.status_code == 403
        assert "evil.example" in evil.json()["error"]["message"]
        local = await http.post(url, json=INIT, headers={**HEADERS, "origin": "http://localhost:3000"})
        assert local.status_code == 200


async def test_an_allowed_origin_may_call() -> None:
    server = FakeServer("fx")
    origins = ("https://app.example",)
    listening = serving(make_config("fx"), server, allowed_origins=origins)
    async with listening as (_, _, url), httpx.AsyncClient() as http:
        ok = await http.post(url, json=INIT, headers={**HEADERS, "origin": "https://app.example"})
        assert ok.status_code == 200


async def test_a_token_is_required_when_one_is_configured(tmp_path: Path) -> None:
    server = FakeServer("fx", tools={"echo": echo})
    listening = serving(make_config("fx"), server, token_file=token_file(tmp_path))
    async with listening as (_, _, url), httpx.AsyncClient() as http:
        missing = await http.post(url, json=INIT, headers=HEADERS)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = await http.post(url, json=INIT, headers={**HEADERS, "authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = await http.post(url, json=INIT, headers={**HEADERS, "authorization": "Bearer s3cret"})
        assert right.status_code == 200


async def test_a_non_loopback_address_without_a_token_is_refused() -> None:
    gateway = Gateway(make_config("fx"))
    with pytest.raises(CannotListen, match="without a bearer token"):
        HttpListener(gateway, HttpListenerConfig(listen="0.0.0.0:8848"))


async def test_a_sandboxed_server_with_network_makes_a_token_necessary_even_on_loopback(
    tmp_path: Path,
) -> None:
    """It reaches 127.0.0.1 like any local process: without a token it could use every server
    behind the gateway that confines it."""
    document = (
        "proxy:\n  upstreams:\n"
        "    - {name: boxed, command: [x], sandbox: {enabled: true}}\n"
        "    - {name: offline, command: [x], sandbox: {enabled: true, network: false}}\n"
    )
    gateway = Gateway(parse_config(document))
    with pytest.raises(CannotListen, match=r"'boxed' run sandboxed with network and could reach it"):
        HttpListener(gateway, HttpListenerConfig(listen="127.0.0.1:0"))
    HttpListener(gateway, HttpListenerConfig(listen="127.0.0.1:0", token_file=token_file(tmp_path, 0o600)))
    offline = Gateway(
        parse_config(
            document.replace("sandbox: {enabled: true}}", "sandbox: {enabled: true, network: false}}")
        )
    )
    HttpListener(offline, HttpListenerConfig(listen="127.0.0.1:0"))


async def test_a_token_file_others_may_read_is_refused(tmp_path: Path) -> None:
    gateway = Gateway(make_config("fx"))
    loose = HttpListenerConfig(listen="0.0.0.0:0", token_file=token_file(tmp_path, 0o644))
    with pytest.raises(CannotListen, match="chmod 600"):
        HttpListener(gateway, loose)


async def test_an_address_in_use_is_one_clear_error() -> None:
    server = FakeServer("fx")
    async with serving(make_config("fx"), server) as (_, listener, _):
        taken = listener.urls[0].removeprefix("http://")
        second = HttpListener(Gateway(make_config("fx")), HttpListenerConfig(listen=taken))
        with pytest.raises(CannotListen, match=f"cannot listen on {taken}"):
            second.bind()


async def test_healthz_reports_every_upstream() -> None:
    async with serving(make_config("fx"), FakeServer("fx")) as (_, _, url), httpx.AsyncClient() as http:
        health = await http.get(url.removesuffix("/mcp") + "/healthz")
        assert health.status_code == 200
        assert health.json() == {"status": "ready", "upstreams": {"fx": "running"}}


async def test_healthz_is_503_while_no_upstream_runs() -> None:
    broken = FakeServer("fx")
    broken.fail_start = "no such command"
    config = make_config("fx", max_restarts=0)
    async with serving(config, broken) as (_, _, url), httpx.AsyncClient() as http:
        health = await http.get(url.removesuffix("/mcp") + "/healthz")
        assert health.status_code == 503
        assert health.json()["status"] == "unavailable"


async def test_tls_files_that_cannot_be_loaded_are_one_clear_error(tmp_path: Path) -> None:
    from watchgate.config.schema import ListenerTlsConfig

    tls = ListenerTlsConfig(cert=str(tmp_path / "nope.pem"), key=str(tmp_path / "nope.key"))
    listener = HttpListener(Gateway(make_config("fx")), HttpListenerConfig(listen="127.0.0.1:0", tls=tls))
    with pytest.raises(CannotListen, match=r"proxy\.http\.tls: cannot load"):
        listener.bind()


async def test_https_with_a_certificate(tmp_path: Path) -> None:
    """A self-signed certificate made here; the client trusts exactly it."""
    import ssl

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    await trio.run_process(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        capture_stdout=True, capture_stderr=True,
    )  # fmt: skip
    from watchgate.config.schema import ListenerTlsConfig

    tls = ListenerTlsConfig(cert=str(cert), key=str(key))
    async with serving(make_config("fx"), FakeServer("fx"), tls=tls) as (_, _, url):
        assert url.startswith("https://")
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        plain = await trio.open_tcp_stream("127.0.0.1", port)  # plain HTTP on the TLS port
        async with plain:
            await plain.send_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            with trio.fail_after(10):  # dropped at the failed handshake: no hang, no answer
                while await plain.receive_some(4096):
                    pass
        context = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(verify=context) as http:  # and TLS clients go on
            response = await http.post(url, json=INIT, headers=HEADERS)
        assert response.status_code == 200


async def _slow_body(port: int) -> bytes:
    """Headers that promise a body, ten bytes of it, then silence: what comes back."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        head = (
            f"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
            f"accept: {SSE_ACCEPT}\r\ncontent-length: 100\r\n\r\n"
        )
        await stream.send_all(head.encode() + b'{"jsonrpc"')
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = await stream.receive_some(4096)
            if not chunk:
                break
            answer += chunk
        return answer


async def test_a_body_that_does_not_arrive_is_cut_off() -> None:
    async with serving(make_config("fx"), FakeServer("fx"), body_timeout=0.5) as (_, _, url):
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        with trio.fail_after(10):
            assert (await _slow_body(port)).startswith(b"HTTP/1.1 408")


async def test_slow_bodies_past_the_bound_are_refused_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the bodies that may be in transit at once a POST is refused at once (503), so slow
    senders cannot take every descriptor (the bound made small here)."""
    monkeypatch.setattr(app_module, "MAX_BODIES_IN_TRANSIT", 4)
    async with serving(make_config("fx"), FakeServer("fx"), body_timeout=60) as (_, listener, url):
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for _ in range(4):  # these hold their slots (a minute each)
                    nursery.start_soon(_slow_body, port)
                while listener.app.bodies_in_transit < 4:  # nothing else tells when they are in
                    await trio.sleep(0.01)
                assert (await _slow_body(port)).startswith(b"HTTP/1.1 503")  # at once, not in a minute
                nursery.cancel_scope.cancel()
        async with httpx.AsyncClient() as http:  # and the listener serves the next client
            assert (await http.get(url.replace("/mcp", "/healthz"))).status_code == 200


async def test_a_rebound_dns_name_is_refused_by_its_host_header() -> None:
    """A page whose name was rebound to 127.0.0.1 sends its own name as Host: 421, even for
    /healthz (a same-origin GET carries no Origin)."""
    async with serving(make_config("fx"), FakeServer("fx")) as (_, _, url), httpx.AsyncClient() as http:
        health = url.replace("/mcp", "/healthz")
        port = health.split(":")[2].split("/")[0]
        assert (await http.get(health, headers={"host": f"attacker.example:{port}"})).status_code == 421
        rebound = await http.post(url, json=INIT, headers={**HEADERS, "host": "attacker.example"})
        assert rebound.status_code == 421 and "DNS rebinding" in rebound.text
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
            assert (await http.get(health, headers={"host": host})).status_code == 200


async def test_named_tokens_say_who_called_and_a_session_is_its_openers(tmp_path: Path) -> None:
    """Two callers, each with a token of its own (one given as its SHA-256, one in a 0600 file):
    each is named in the audit log, and neither may use the other's session."""
    ana_token = "ana-s3cret-token"
    bob_file = tmp_path / "bob.token"
    bob_file.write_text("bob-s3cret-token\n")
    bob_file.chmod(0o600)
    auth = ListenerAuth(
        tokens=(
            ListenerToken(name="ana", sha256=hashlib.sha256(ana_token.encode()).hexdigest(), groups=("dev",)),
            ListenerToken(name="bob", token_file=str(bob_file)),
        )
    )
    log = tmp_path / "audit.jsonl"
    config = parse_config(
        yaml.safe_dump(
            {
                "proxy": {"upstreams": [{"name": "fx", "command": ["fake"]}]},
                "audit": {"path": str(log)},
            }
        )
    )
    audit = AuditActor(resolved_audit_config(config), threaded=False)
    async with (
        serving(config, FakeServer("fx", tools={"echo": echo}), auth=auth, audit=audit) as (_, _, url),
        httpx.AsyncClient() as http,
    ):
        ana = LegacyClient(http, url)
        ana.http.headers["authorization"] = f"Bearer {ana_token}"
        await ana.initialize()
        await ana.request("tools/call", {"name": "echo", "arguments": {"text": "a"}})
        as_bob = {**ana.headers(), "authorization": "Bearer bob-s3cret-token"}
        stolen = await http.post(
            url, json={"jsonrpc": "2.0", "id": 9, "method": "tools/list"}, headers=as_bob
        )
        assert stolen.status_code == 403 and "belongs to another caller" in stolen.text
        assert (await http.delete(url, headers=as_bob)).status_code == 403
        stream = await http.get(url, headers={**as_bob, "accept": "text/event-stream"})
        assert stream.status_code == 403  # nor its GET stream (the server's requests to ana)
        wrong = await http.post(url, json=INIT, headers={**HEADERS, "authorization": "Bearer nope"})
        assert wrong.status_code == 401
        bob = await http.post(
            url,
            json=modern_request(3, "tools/call", {"name": "echo", "arguments": {"text": "b"}}),
            headers={**modern_headers("tools/call", "echo"), "authorization": "Bearer bob-s3cret-token"},
        )
        assert bob.status_code == 200
    records = [json.loads(line) for line in log.read_text().splitlines()]
    who = {
        (r["principal"], tuple(r.get("groups") or ())) for r in records if r["event"] in ("response", "call")
    }
    assert who == {("ana", ("dev",)), ("bob", ())}
    assert ana_token not in log.read_text() and "bob-s3cret" not in log.read_text()


async def test_a_rate_limited_2026_request_gets_429_and_retry_after(tmp_path: Path) -> None:
    token = "ci-token-0123456789"
    auth = ListenerAuth(tokens=(ListenerToken(name="ci", sha256=hashlib.sha256(token.encode()).hexdigest()),))
    config = parse_config(
        yaml.safe_dump(
            {
                "proxy": {"upstreams": [{"name": "fx", "command": ["fake"]}]},
                "access": [{"match": {"user": "ci"}, "rate": {"calls": 1, "per": 30}}],
            }
        )
    )
    async with (
        serving(config, FakeServer("fx", tools={"echo": echo}), auth=auth) as (_, _, url),
        httpx.AsyncClient() as http,
    ):
        headers = {**modern_headers("tools/call", "echo"), "authorization": f"Bearer {token}"}
        call = modern_request(1, "tools/call", {"name": "echo", "arguments": {"text": "x"}})
        assert (await http.post(url, json=call, headers=headers)).status_code == 200
        limited = await http.post(url, json=call, headers=headers)
        assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 30
        assert limited.json()["error"]["code"] == -32012


async def test_a_listener_shut_down_before_it_serves_returns_at_once() -> None:
    listener = HttpListener(Gateway(make_config("fx")), HttpListenerConfig(listen="127.0.0.1:0"))
    listener.shutdown()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(listener.serve)
    assert listener.stopped.is_set()
