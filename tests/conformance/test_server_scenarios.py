"""The official conformance suite's server scenarios against Watchgate's client side: Watchgate
serving HTTP in front of the project's own fixture (``tests/servers/conformance_fixture.py``,
over stdio), compared with the same fixture served directly over HTTP, for both requirement
sets.

Each side runs the whole requirement set in one ``--requirements`` invocation; a scenario
failed if any of its checks did (``checks.json`` in the output directory). The test fails when
Watchgate fails a scenario the fixture passes directly (unless the baseline names it, with the
reason), and when a baseline entry passes now (a stale baseline). The score is in
docs/conformance.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import trio
import yaml

from tests.conformance.test_client_scenarios import NODE, PACKAGE, SUITE
from tests.integration.conftest import WATCHGATE
from watchgate.bench.httpdriver import free_port

HERE = Path(__file__).resolve().parent
FIXTURE = HERE.parent / "servers" / "conformance_fixture.py"
#: how Watchgate reaches the fixture, per requirement set (a 2025-11-25 client never meets
#: ``protocol: modern``'s own features, so that way runs with the 2026-07-28 set only)
THROUGH = {"2025-11-25": ("stdio", "http"), "2026-07-28": ("stdio", "stdio-modern", "http")}
#: the fixture's three shapes: both eras on one endpoint (the SDK's way), or one era only
#: (``era_shapes.py``), reached over stdio and HTTP: through Watchgate never worse than directly
SHAPES = {"both": (), "legacy": ("--only", "legacy"), "modern": ("--only", "modern")}

pytestmark = pytest.mark.integration


@asynccontextmanager
async def serving(command: list[str], port: int, log: Path) -> AsyncIterator[str]:
    """Run ``command`` (an HTTP server on ``port``) until the block ends; its MCP endpoint."""
    with log.open("w") as out:
        process = await trio.lowlevel.open_process(
            command, stdout=out, stderr=subprocess.STDOUT, env=os.environ
        )
    try:
        with trio.fail_after(60):
            async with httpx.AsyncClient() as probe:
                while process.returncode is None:
                    try:
                        await probe.get(f"http://127.0.0.1:{port}/")
                        break
                    except httpx.TransportError:
                        await trio.sleep(0.05)
        assert process.returncode is None, log.read_text()
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        with trio.CancelScope(shield=True):
            process.terminate()
            with trio.move_on_after(10):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()


def _through_watchgate(tmp_path: Path, port: int, fixture: dict[str, Any]) -> list[str]:
    config = tmp_path / f"watchgate-{port}.yaml"
    upstream = {"name": "fixture", "request_timeout": 60, **fixture}
    config.write_text(
        yaml.safe_dump(
            {
                "proxy": {
                    "transport": "http",
                    "http": {"listen": f"127.0.0.1:{port}"},
                    "upstreams": [upstream],
                },
                "audit": {"enabled": False},
            }
        )
    )
    return [WATCHGATE, "run", "-c", str(config)]


async def _failed_scenarios(url: str, revision: str, results: Path) -> tuple[set[str], set[str], str]:
    """(failed, run) scenario names, and the suite's summary."""
    done = await trio.run_process(
        [str(NODE), str(SUITE), "server", "--url", url, "--requirements", revision, "-o", str(results)],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    failed, ran = set(), set()
    for checks in results.glob("server-*/checks.json"):
        name = checks.parent.name.removeprefix("server-").rsplit("-", 6)[0]  # drop the timestamp
        ran.add(name)
        if any(check["status"] == "FAILURE" for check in json.loads(checks.read_text())):
            failed.add(name)
    output = done.stdout.decode(errors="replace")
    return failed, ran, output[output.find("=== SUMMARY") :]


def _baseline(revision: str) -> dict[str, dict[str, str]]:
    """Per way through (``THROUGH``): the scenarios expected to fail there, with the reason."""
    entries = yaml.safe_load((HERE / f"server-baseline-{revision}.yaml").read_text())["server"] or []
    expected: dict[str, dict[str, str]] = {side: {} for side in THROUGH[revision]}
    for entry in entries:
        for side in entry.get("through", THROUGH[revision]):
            expected[side][entry["scenario"]] = entry["reason"]
    return expected


def _scored(revision: str) -> set[str]:
    requirements = yaml.safe_load((PACKAGE / "requirements" / f"{revision}.yaml").read_text())
    return set(requirements["server"])


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("revision", ["2025-11-25", "2026-07-28"])
async def test_watchgate_scores_what_the_fixture_scores_for(
    revision: str, shape: str, tmp_path: Path
) -> None:
    """The requirement set run at once against the fixture directly and through Watchgate, which
    reaches it over stdio (the ``initialize`` era: a legacy upstream), over stdio with
    ``protocol: modern`` (2026-07-28 requirements only) and over HTTP (2026-07-28: a modern
    upstream, whose ``input_required`` and ``requestState`` pass through untouched). The
    fixture of one era only is reached over stdio and HTTP (``protocol: auto``): what it fails
    directly may fail through Watchgate too, nothing more."""
    direct_port = free_port()
    stdio = [sys.executable, str(FIXTURE), "stdio", *SHAPES[shape]]
    with trio.fail_after(600):
        async with contextlib.AsyncExitStack() as stack:
            fixture = [sys.executable, str(FIXTURE), "http", str(direct_port), *SHAPES[shape]]
            urls = {
                "direct": await stack.enter_async_context(
                    serving(fixture, direct_port, tmp_path / "direct.log")
                )
            }
            upstreams = {
                "stdio": {"command": stdio},
                "stdio-modern": {"command": stdio, "protocol": "modern"},
                "http": {"transport": "http", "url": urls["direct"]},
            }
            sides = THROUGH[revision] if shape == "both" else ("stdio", "http")
            for side in sides:
                port = free_port()
                gateway = _through_watchgate(tmp_path, port, upstreams[side])
                urls[side] = await stack.enter_async_context(serving(gateway, port, tmp_path / f"{side}.log"))
            outcome: dict[str, tuple[set[str], set[str], str]] = {}

            async def run(side: str, url: str) -> None:
                outcome[side] = await _failed_scenarios(url, revision, tmp_path / side)

            async with trio.open_nursery() as nursery:
                for side, url in urls.items():
                    nursery.start_soon(run, side, url)
    scored = _scored(revision)
    direct_failed, direct_ran, _ = outcome["direct"]
    expected = _baseline(revision)
    passed_directly = direct_ran - direct_failed
    for side in sides:
        failed, ran, summary = outcome[side]
        assert scored <= ran, side  # the whole requirement set ran through Watchgate
        if shape == "both":  # and directly (a fixture of one era may end some scenarios early)
            assert ran == direct_ran, side
        # the score: scored scenarios only (the unscored ones, extensions and pending, run for visibility)
        worse = ((passed_directly & scored) - (ran - failed)) - set(expected[side])
        assert worse == set(), (
            f"fail through Watchgate ({side}) but pass directly: {sorted(worse)}\n{summary}"
        )
        unexplained = (failed & scored) - direct_failed - (scored - direct_ran) - set(expected[side])
        assert unexplained == set(), (
            f"failing ({side}), not in the baseline: {sorted(unexplained)}\n{summary}"
        )
        stale = set(expected[side]) - failed
        assert stale == set(), f"passing now ({side}): take them out of the baseline: {sorted(stale)}"
