"""The audit log inside a running gateway: what reaches the file, and what happens when it can't."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio
import trio.testing
import yaml

from tests.audit.helpers import Clock
from tests.gateway.fakes import FakeServer, FakeSession, echo, running_daemon, running_gateway, text
from watchgate.audit import AuditActor, resolved_audit_config, verify_log
from watchgate.config import GatewayConfig, parse_config

FAKE_AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


def _config(audit_path: Path, **audit: Any) -> GatewayConfig:
    document = {
        "proxy": {
            "upstreams": [{"name": "vault", "command": ["fake"]}, {"name": "other", "command": ["fake"]}]
        },
        "plugins": [{"name": "secrets"}],
        "audit": {"path": str(audit_path), **audit},
    }
    return parse_config(yaml.safe_dump(document))


def _audit(config: GatewayConfig) -> AuditActor:
    return AuditActor(resolved_audit_config(config), threaded=False, wall_clock=Clock())


async def test_secrets_are_redacted_before_they_reach_the_log(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async def leak(session: FakeSession, args: dict[str, Any]) -> Any:
        return text(f"the key is {FAKE_AWS_KEY}")

    log = tmp_path / "audit.jsonl"
    config = _config(log, include_payloads=True)
    servers = FakeServer("vault", tools={"leak": leak, "echo": echo}), FakeServer("other")
    async with running_gateway(config, *servers, audit=_audit(config)) as (_, client):
        await client.initialize()
        result = await client.result("tools/call", {"name": "vault__leak"})
        assert FAKE_AWS_KEY not in json.dumps(result) and "[REDACTED:" in json.dumps(result)
        await client.result(
            "tools/call", {"name": "vault__echo", "arguments": {"text": f"send {FAKE_AWS_KEY}"}}
        )
    content = "".join(p.read_text() for p in tmp_path.glob("audit.jsonl*"))
    assert FAKE_AWS_KEY not in content
    records = [json.loads(line) for line in content.splitlines()]
    # a call answered before its request's record was written is one record (ADR-033)
    responses = [r for r in records if r["event"] in ("response", "call")]
    assert [r["public_name"] for r in responses] == ["vault__leak", "vault__echo"]
    sent = [r for r in records if r.get("public_name") == "vault__echo" and r["event"] in ("request", "call")]
    assert "[REDACTED:" in json.dumps(sent[0].get("request_payload", sent[0].get("payload")))
    assert all(r["client"].startswith("client-") and r["duration_ms"] >= 0 for r in responses)
    assert any(r["event"] == "decision" and r["plugin"] == "secrets" for r in records)
    assert any(r["event"] == "lifecycle" and r["method"] == "server_started" for r in records)
    assert verify_log(str(log)).ok


async def test_an_unwritable_log_refuses_calls_until_it_is_writable_again(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the log directory should be")
    config = _config(blocker / "audit.jsonl")
    servers = FakeServer("vault", tools={"echo": echo}), FakeServer("other")
    async with running_gateway(config, *servers, audit=_audit(config)) as (gateway, client):
        await client.initialize()
        refused = await client.request("tools/call", {"name": "vault__echo", "arguments": {"text": "x"}})
        assert refused["error"]["code"] == -32011 and str(blocker) in refused["error"]["message"]
        assert gateway.audit is not None and not gateway.audit.status().healthy

        blocker.unlink()
        blocker.mkdir()
        await client.wait_for(lambda: gateway.audit is not None and gateway.audit.status().healthy)
        answer = await client.result("tools/call", {"name": "vault__echo", "arguments": {"text": "back"}})
        assert answer["content"][0]["text"] == "back"
    assert verify_log(str(blocker / "audit.jsonl")).ok


async def test_names_and_ids_a_client_chose_are_stored_cleaned(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """A tool name or request id carrying a key, a newline or an ANSI sequence is recorded with
    the key redacted and the controls escaped: nothing forges a line in `audit tail`."""
    log = tmp_path / "audit.jsonl"
    config = _config(log)
    servers = FakeServer("vault", tools={"echo": echo}), FakeServer("other")
    hostile = f"vault__x\n2026-01-01 #1 forged\x1b[2J {FAKE_AWS_KEY}"
    async with running_gateway(config, *servers, audit=_audit(config)) as (_, client):
        await client.initialize()
        await client.send(
            {"jsonrpc": "2.0", "id": "id\x1b[31m", "method": "tools/call", "params": {"name": hostile}}
        )
        await client.response("id\x1b[31m")
    content = log.read_text()
    assert FAKE_AWS_KEY not in content and "\\u001b" not in content and "\x1b" not in content
    [record] = [json.loads(line) for line in content.splitlines() if '"event":"call"' in line]
    assert record["public_name"] == "vault__x\\n2026-01-01 #1 forged\\x1b[2J [REDACTED:aws_access_key]"
    assert record["request_id"] == "id\\x1b[31m"
    assert verify_log(str(log)).ok


async def test_calls_refused_before_any_server_are_recorded_with_the_name_as_called(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """Unknown names, names the tool manager hides and names the client's profile hides never
    reach a server, and each leaves its request, its refusal and its answer in the log."""
    log = tmp_path / "audit.jsonl"
    document = {
        "proxy": {
            "startup_wait": 15,
            "upstreams": [
                {"name": "vault", "command": ["fake"], "tools": {"deny": ["drop*"]}},
                {"name": "other", "command": ["fake"]},
            ],
        },
        "profiles": {"narrow": {"servers": ["vault"]}},
        "audit": {"path": str(log)},
    }
    config = parse_config(yaml.safe_dump(document))
    vault, other = (
        FakeServer("vault", tools={"echo": echo, "drop_all": echo}),
        FakeServer("other", tools={"x": echo}),
    )
    async with running_daemon(config, vault, other, audit=_audit(config)) as (gateway, attach):
        client = await attach(profile="narrow")
        await client.initialize()
        await client.wait_for(lambda: gateway.router.tool_count("other") == 1)
        for name in ("vault__nope", "vault__drop_all", "other__x", "vault__ECHO"):
            error = (await client.request("tools/call", {"name": name}))["error"]
            # decided here, naming only what this client may see
            assert error["code"] == -32602 and error["message"].endswith("(known servers: vault)"), name
        assert vault.session.requests("tools/call") == [] and other.session.requests("tools/call") == []
    records = [json.loads(line) for line in log.read_text().splitlines()]
    refused = [
        (r["event"], r["public_name"], r.get("plugin"), r.get("decision"), r.get("error_code"))
        for r in records
        if r["event"] in ("request", "decision", "response", "call")
    ]
    expected = []
    for name, by in (
        ("vault__nope", "gateway"),
        ("vault__drop_all", "tool_manager"),
        ("other__x", "profile"),
        ("vault__ECHO", "gateway"),
    ):
        expected += [  # refused at once: request and answer are one call record
            ("decision", name, by, "deny", None),
            ("call", name, by, "deny", -32602),
        ]
    assert refused == expected
    assert all(r.get("server") is None for r in records if r["event"] == "call")
    assert verify_log(str(log)).ok
