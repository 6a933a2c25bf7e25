"""``watchgate run`` end to end: real servers upstream, the official MCP SDK as the client."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from mcp import MCPError

from tests.integration.conftest import (
    CRASHY,
    EVERYTHING,
    FILESYSTEM,
    TIME,
    WATCHGATE,
    Recorder,
    gateway,
    text_of,
    upstream,
)

pytestmark = pytest.mark.integration


async def test_three_real_servers_behind_one_connection(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "note.txt").write_text("hello from the filesystem server")
    config = write_config(
        upstream("everything", EVERYTHING),
        upstream("filesystem", [FILESYSTEM, str(shared)]),
        upstream("time", TIME),
    )
    with trio.fail_after(60):
        async with gateway(config) as session:
            names = {tool.name for tool in (await session.list_tools()).tools}
            assert {"everything__echo", "filesystem__read_text_file", "time__get_current_time"} <= names
            assert all("__" in name for name in names)

            echo = await session.call_tool("everything__echo", {"message": "hi"})
            assert text_of(echo) == "Echo: hi"
            note = await session.call_tool("filesystem__read_text_file", {"path": str(shared / "note.txt")})
            assert "hello from the filesystem server" in text_of(note)
            now = await session.call_tool("time__get_current_time", {"timezone": "Asia/Tokyo"})
            assert "Asia/Tokyo" in text_of(now)
            # only that server: the time server does not know the filesystem's tool
            with pytest.raises(MCPError) as info:
                await session.call_tool("time__read_text_file", {"path": "/etc/hostname"})
            assert "read_text_file" in info.value.error.message


async def test_single_server_names_pass_through(write_config: Callable[..., Path]) -> None:
    config = write_config(upstream(None, TIME))
    with trio.fail_after(60):
        async with gateway(config) as session:
            names = {tool.name for tool in (await session.list_tools()).tools}
            assert names == {"get_current_time", "convert_time"}
            result = await session.call_tool("get_current_time", {"timezone": "UTC"})
            assert '"timezone": "UTC"' in text_of(result)


async def test_missing_command_degrades_gracefully(write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = write_config(
        upstream(
            "ghost", ["/nonexistent/mcp-server-ghost"], max_restarts=1, backoff={"initial": 0.1, "max": 0.2}
        ),
        upstream("time", TIME),
        startup_wait=20,
    )
    stderr = tmp_path / "gateway.log"
    with trio.fail_after(60):
        async with gateway(config, stderr=stderr) as session:
            names = {tool.name for tool in (await session.list_tools()).tools}
            assert "time__get_current_time" in names and not any(n.startswith("ghost__") for n in names)
            assert "UTC" in text_of(await session.call_tool("time__get_current_time", {"timezone": "UTC"}))
            with pytest.raises(MCPError) as info:
                await session.call_tool("ghost__anything", {})
            assert info.value.error.code == -32003
            assert "ghost" in info.value.error.message and "mcp-server-ghost" in info.value.error.message
    log = stderr.read_text()
    assert "[ghost]" in log and "cannot start" in log
    assert "Traceback" not in log


async def test_crash_mid_call_fails_fast_and_recovers(write_config: Callable[..., Path]) -> None:
    config = write_config(
        upstream("crashy", CRASHY, backoff={"initial": 0.2, "max": 0.5, "jitter": 0.1}),
        upstream("time", TIME),
    )
    notes = Recorder()
    with trio.fail_after(60):
        async with gateway(config, message_handler=notes) as session:
            first_pid = text_of(await session.call_tool("crashy__pid", {}))
            with pytest.raises(MCPError) as info:
                await session.call_tool("crashy__crash", {})
            error = info.value.error
            assert error.code == -32003
            assert "crashy" in error.message and "exited with code 3" in error.message
            assert "crashing on purpose" in error.message
            # the other server is untouched
            assert "UTC" in text_of(await session.call_tool("time__get_current_time", {"timezone": "UTC"}))
            # the tools go away and come back: the client is told both times
            await notes.wait_for("notifications/tools/list_changed", count=2)
            while "crashy__pid" not in {t.name for t in (await session.list_tools()).tools}:
                await notes.wait_for("notifications/tools/list_changed", count=len(notes.messages) + 1)
            second_pid = text_of(await session.call_tool("crashy__pid", {}))
            assert second_pid != first_pid


async def test_resources_and_prompts_through_namespacing(write_config: Callable[..., Path]) -> None:
    config = write_config(upstream("everything", EVERYTHING), upstream("crashy", CRASHY))
    with trio.fail_after(60):
        async with gateway(config) as session:
            resources = (await session.list_resources()).resources
            assert resources and all(str(r.uri).startswith("everything+") for r in resources)
            chosen = next(r for r in resources if str(r.uri).endswith("architecture.md"))
            read = await session.read_resource(str(chosen.uri))
            assert str(read.contents[0].uri) == str(chosen.uri)
            assert read.contents[0].text  # type: ignore[union-attr]

            templates = (await session.list_resource_templates()).resource_templates
            assert templates and all(t.uri_template.startswith("everything+") for t in templates)

            prompts = {p.name for p in (await session.list_prompts()).prompts}
            assert "everything__simple-prompt" in prompts
            prompt = await session.get_prompt("everything__simple-prompt")
            assert prompt.messages

            link = await session.call_tool("crashy__link", {})
            assert str(link.content[0].uri) == "crashy+file:///tmp/x.txt"  # type: ignore[union-attr]

            with pytest.raises(MCPError) as info:
                await session.read_resource("demo://resource/static/document/architecture.md")
            assert info.value.error.code == -32602 and "everything" in info.value.error.message


async def test_progress_reaches_the_client_with_its_own_token(write_config: Callable[..., Path]) -> None:
    config = write_config(upstream("everything", EVERYTHING), upstream("crashy", CRASHY))
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    with trio.fail_after(60):
        async with gateway(config) as session:
            result = await session.call_tool(
                "everything__trigger-long-running-operation",
                {"duration": 0.5, "steps": 3},
                progress_callback=on_progress,
            )
            assert not result.is_error
    assert [p for p, _ in seen] == [1, 2, 3]
    assert all(total == 3 for _, total in seen)


async def test_the_sdks_modern_client_on_stdio_answers_a_legacy_servers_question(
    write_config: Callable[..., Path],
) -> None:
    """The official SDK's 2026-07-28 client over stdio: server-everything (a legacy server)
    asks for sampling mid-call; the call comes back input_required, the SDK's retry answers it,
    and the call's answer follows (MRTR on a byte stream, ADR-024 10.)."""
    from mcp import Client, StdioServerParameters, types

    async def sample(context: object, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="forty-two"), model="test-model"
        )

    config = write_config(upstream("everything", EVERYTHING))
    params = StdioServerParameters(command=WATCHGATE, args=["run", "-c", str(config)], env=dict(os.environ))
    with trio.fail_after(60):
        async with Client(params, mode="2026-07-28", sampling_callback=sample) as client:
            sampled = await client.call_tool("trigger-sampling-request", {"prompt": "?", "maxTokens": 5})
            assert "forty-two" in text_of(sampled)
            echoed = await client.call_tool("echo", {"message": "after"})
            assert text_of(echoed) == "Echo: after"
