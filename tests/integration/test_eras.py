"""One upstream that speaks both eras (the project's conformance fixture over HTTP: the SDK's
``MCPServer`` serves 2025-11-25 sessions and 2026-07-28 requests on one endpoint), and a
2025-11-25 client (on the daemon's socket, through ``watchgate attach``) and a 2026-07-28 client
(over the daemon's HTTP listener) at the same time: each gets what it would get directly. The older client's tools ask with the older helpers (``ctx.sample``,
``ctx.elicit``), which exist only on a legacy session, so the gateway opens one for it; the newer
client's tools ask through ``input_required`` (MRTR). Progress, cancellation and resource
updates reach both; ``ps`` shows one server speaking both eras."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml
from mcp import Client, ClientSession, types
from mcp.shared.subscriptions import ResourceUpdated

from tests.conformance.test_server_scenarios import FIXTURE, serving
from tests.integration.conftest import text_of
from tests.integration.test_daemon import attached, running_daemon
from tests.integration.test_http_clients import _SDK_LEAVES_GENERATORS
from watchgate.bench.httpdriver import free_port

pytestmark = pytest.mark.integration
WATCHED = "test://watched-resource"


async def _sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text="Paris"), model="test-model"
    )


async def _elicit(context: Any, params: Any) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": "Ada", "username": "ada"})


class Updates:
    """The ``notifications/resources/updated`` a legacy client got."""

    def __init__(self) -> None:
        self.uris: list[str] = []
        self.came = trio.Event()

    async def __call__(self, message: Any) -> None:
        root = getattr(message, "root", message)
        if isinstance(root, types.ResourceUpdatedNotification):
            self.uris.append(str(root.params.uri))
            self.came.set()


async def _progress_of(client: Client | ClientSession) -> list[float]:
    seen: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(value)

    await client.call_tool("test_tool_with_progress", {}, progress_callback=on_progress)
    return seen


async def _cancel_a_wait(client: Client | ClientSession) -> None:
    """A call the client gives up on is cancelled at the server."""
    with trio.move_on_after(1):
        await client.call_tool("test_wait", {})


@_SDK_LEAVES_GENERATORS
@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")  # the 2025-11-25 way, on purpose
async def test_clients_of_both_eras_share_an_upstream_of_both_eras(tmp_path: Path) -> None:
    fixture_port, port = free_port(), free_port()
    fixture = [sys.executable, str(FIXTURE), "http", str(fixture_port)]
    async with serving(fixture, fixture_port, tmp_path / "fixture.log") as fixture_url:
        config = tmp_path / "watchgate.yaml"
        upstream = {"name": "fixture", "transport": "http", "url": fixture_url, "request_timeout": 30}
        config.write_text(yaml.safe_dump({"proxy": {"upstreams": [upstream]}, "audit": {"enabled": False}}))
        updates = Updates()
        url = f"http://127.0.0.1:{port}/mcp"
        async with (
            running_daemon(config, "--http", f"127.0.0.1:{port}") as daemon,
            attached(
                daemon, sampling_callback=_sample, elicitation_callback=_elicit, message_handler=updates
            ) as old,
            Client(url, mode="2026-07-28", sampling_callback=_sample, elicitation_callback=_elicit) as new,
        ):
            results: dict[str, str] = {}

            async def legacy_side() -> None:
                results["old sampled"] = text_of(await old.call_tool("test_sampling", {"prompt": "Capital?"}))
                results["old elicited"] = text_of(
                    await old.call_tool("test_elicitation", {"message": "Name?"})
                )
                results["old progress"] = str(await _progress_of(old))
                await _cancel_a_wait(old)

            async def modern_side() -> None:
                results["new sampled"] = text_of(
                    await new.call_tool("test_input_required_result_sampling", {})
                )
                results["new elicited"] = text_of(
                    await new.call_tool("test_input_required_result_elicitation", {})
                )
                results["new progress"] = str(await _progress_of(new))
                await _cancel_a_wait(new)

            with trio.fail_after(60):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(legacy_side)
                    nursery.start_soon(modern_side)
                # resource updates, to a subscriber of each era
                await old.subscribe_resource(WATCHED)
                async with new.listen(resource_subscriptions=[WATCHED]) as listening:
                    await new.call_tool("test_update_watched", {})
                    event = await listening.__anext__()
                    assert isinstance(event, ResourceUpdated) and event.uri == WATCHED
                await updates.came.wait()
                assert set(updates.uris) == {WATCHED}
                cancelled = text_of(await old.call_tool("test_cancelled_count", {}))
            row = await daemon.upstream("fixture")
            shown = (await daemon.cli("ps", "fixture")).stdout + (await daemon.cli("ps")).stdout
        log = daemon.log.read_text()
    assert results["old sampled"] == "LLM response: Paris"  # bridged in 2026-07-28 it was "not supported"
    assert results["old elicited"].startswith("User response: action=accept")
    assert results["new sampled"] == "Sampling result: Paris"
    assert results["new elicited"] == "Hello, Ada!"
    assert results["old progress"] == results["new progress"] == "[0.0, 50.0, 100.0]"
    assert cancelled == "2", "both cancelled calls stopped at the server"
    assert "opened a 2025-11-25 session for its clients of that era" in log
    assert row["also_speaks"] == ["2025-11-25"] and "MCP 2026-07-28 + 2025-11-25" in shown
    assert "http+2025-11-25" in shown  # one row, both eras
