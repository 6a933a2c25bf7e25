"""Approvals with the official SDK client and a real server, in the daemon: a client that
declares elicitation is asked in its call; one that does not waits until ``watchgate approvals
approve`` (or ``deny``) decides; the server sees exactly the approved calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml
from mcp import types
from mcp.shared.exceptions import MCPError

from tests.integration.conftest import EVERYTHING, text_of
from tests.integration.test_daemon import DaemonHandle, attached, running_daemon

pytestmark = pytest.mark.integration


class Asked:
    """An elicitation callback that answers with ``approve`` and keeps what it was asked."""

    def __init__(self, approve: bool) -> None:
        self.approve = approve
        self.messages: list[str] = []

    async def __call__(self, context: Any, params: Any) -> types.ElicitResult:
        self.messages.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": self.approve})


async def _held(daemon: DaemonHandle) -> list[dict[str, Any]]:
    listed = await daemon.cli("approvals", "--json")
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)  # type: ignore[no-any-return]


async def test_an_sdk_client_is_asked_or_a_person_decides_on_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "watchgate.yaml"
    document = {
        "proxy": {"startup_wait": 20, "upstreams": [{"name": "everything", "command": EVERYTHING}]},
        "approvals": [{"tools": ["echo"], "timeout": 60}],
    }
    config.write_text(yaml.safe_dump(document))
    async with running_daemon(config) as daemon:
        yes, no = Asked(approve=True), Asked(approve=False)
        with trio.fail_after(60):
            async with attached(daemon, elicitation_callback=yes) as asking:
                assert text_of(await asking.call_tool("echo", {"message": "hi"})) == "Echo: hi"
                assert "everything" in yes.messages[0] and '"message":"hi"' in yes.messages[0]
                assert "3" in text_of(await asking.call_tool("get-sum", {"a": 1, "b": 2}))  # no rule
            async with attached(daemon, elicitation_callback=no) as refusing:
                with pytest.raises(MCPError, match="declined in the client"):
                    await refusing.call_tool("echo", {"message": "no"})

            async with attached(daemon) as plain, trio.open_nursery() as nursery:
                answers: list[Any] = []

                async def call(message: str) -> None:
                    try:
                        answers.append(text_of(await plain.call_tool("echo", {"message": message})))
                    except MCPError as exc:
                        answers.append(f"{exc.code}: {exc}")

                nursery.start_soon(call, "approve me")
                while not (held := await _held(daemon)):
                    await trio.sleep(0.1)
                assert held[0]["tool"] == "echo" and held[0]["arguments"] == {"message": "approve me"}
                assert (await daemon.cli("approvals", "approve", held[0]["id"])).returncode == 0
                while not answers:
                    await trio.sleep(0.05)
                assert answers[0] == "Echo: approve me"

                nursery.start_soon(call, "deny me")
                while not (held := await _held(daemon)):
                    await trio.sleep(0.1)
                denied = await daemon.cli("approvals", "deny", held[0]["id"], "--reason", "not today")
                assert denied.returncode == 0, denied.stderr
                while len(answers) < 2:
                    await trio.sleep(0.05)
                assert answers[1].startswith("-32010: echo was denied by") and "not today" in answers[1]
            tail = await daemon.cli("audit", "tail", "--approvals", "-n", "50", "-c", str(config))
    outcomes = [line for line in tail.stdout.splitlines() if "approval a" in line]
    assert sum(" approved " in line for line in outcomes) == 2
    assert sum(" denied " in line for line in outcomes) == 2
