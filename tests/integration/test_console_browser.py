"""The web console in a real browser: Debian's headless Chromium driven by Selenium through
Debian's chromedriver (no browser download). The daemon serves it with ``--http``; a person
sees the servers, approves a held call by clicking, watches it complete, filters the audit log;
a tool named with markup shows as text; an action without the page's CSRF token is refused."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml
from mcp.shared.exceptions import MCPError

from tests.integration.conftest import CRASHY, text_of
from tests.integration.test_daemon import attached, running_daemon
from watchgate.bench.httpdriver import free_port

pytestmark = pytest.mark.integration
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
HOSTILE = "<img src=x onerror=document.title='pwned'>"


def _browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={tempfile.mkdtemp(prefix='wg-chromium-')}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))


def _until(driver: Any, check: Callable[[Any], Any], timeout: float = 20) -> Any:
    """Until ``check`` holds; a row the page redrew while it was read is read again (the page
    polls and replaces what changed, so an element can go stale between two lookups)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    )
    return wait.until(check)


def _redrawn(driver: Any) -> None:
    """Until the page has polled and redrawn the held calls (their age cell says so)."""
    from selenium.webdriver.common.by import By

    age = "#approvals tbody tr td:nth-child(2)"
    before = driver.find_element(By.CSS_SELECTOR, age).text
    _until(driver, lambda d: d.find_element(By.CSS_SELECTOR, age).text != before, timeout=10)


@pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)
async def test_a_person_approves_a_held_call_in_the_console(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    port = free_port()
    config = tmp_path / "watchgate.yaml"
    server = {"name": "tools", "command": [*CRASHY, "--extra-tool", HOSTILE]}
    document = {
        "proxy": {"startup_wait": 20, "upstreams": [server]},
        "approvals": [{"tools": ["*"], "ask": "console", "timeout": 60}],
    }
    config.write_text(yaml.safe_dump(document))
    shots = tmp_path / "screenshots"
    shots.mkdir()
    async with running_daemon(config, "--http", f"127.0.0.1:{port}") as daemon:
        shown = await daemon.cli("console")  # where a person finds it
        assert shown.returncode == 0, shown.stderr
        console = shown.stdout.strip()
        assert console == f"http://127.0.0.1:{port}/console"
        driver = await trio.to_thread.run_sync(_browser)
        try:
            async with attached(daemon) as client, trio.open_nursery() as nursery:
                answers: dict[str, str] = {}

                async def call(tool: str, text: str) -> None:
                    try:
                        answers[tool] = text_of(await client.call_tool(tool, {"text": text}))
                    except MCPError as exc:
                        answers[tool] = str(exc)

                nursery.start_soon(call, "echo", "approved in a browser")
                nursery.start_soon(call, HOSTILE, "markup")

                def look_and_approve() -> str:
                    driver.get(console)
                    _until(
                        driver, lambda d: d.find_elements(By.CSS_SELECTOR, '#servers tr[data-server="tools"]')
                    )
                    rows = _until(
                        driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#approvals tbody tr")) == 2
                    )
                    assert rows
                    driver.save_screenshot(str(shots / "console-held.png"))
                    tools = [
                        row.find_elements(By.TAG_NAME, "td")[3].text
                        for row in driver.find_elements(By.CSS_SELECTOR, "#approvals tbody tr")
                    ]
                    assert HOSTILE in tools  # as text
                    assert not driver.find_elements(By.CSS_SELECTOR, "#approvals img")
                    _redrawn(driver)  # the rows, and their buttons, stay through a redraw
                    approve = '#approvals tr[data-tool="echo"] button[data-action="approve"]'
                    driver.find_element(By.CSS_SELECTOR, approve).click()
                    status: int = driver.execute_async_script(
                        "const done = arguments[arguments.length - 1];"
                        "fetch('/console/api/servers/tools/stop', {method: 'POST', body: '{}',"
                        " headers: {'Content-Type': 'application/json'}}).then(r => done(r.status));"
                    )
                    return f"{status} {driver.title}"

                csrf_status = await trio.to_thread.run_sync(look_and_approve)
                while "echo" not in answers:
                    await trio.sleep(0.05)
                assert answers["echo"] == "approved in a browser"

                def deny_and_filter() -> None:
                    _until(
                        driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#approvals tbody tr")) == 1
                    )
                    row = driver.find_element(By.CSS_SELECTOR, "#approvals tbody tr")
                    row.find_element(By.CSS_SELECTOR, "input").send_keys("not in a test")
                    _redrawn(driver)  # what was typed survives a redraw
                    row.find_element(By.CSS_SELECTOR, 'button[data-action="deny"]').click()
                    _until(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, "#approvals tbody tr"))
                    tool = driver.find_element(By.CSS_SELECTOR, '#audit-filters input[name="tool"]')
                    tool.send_keys("echo")
                    driver.find_element(By.ID, "filter").click()
                    _until(
                        driver,
                        lambda d: (
                            d.find_elements(By.CSS_SELECTOR, "#audit-records tbody tr")
                            and all(
                                r.find_elements(By.TAG_NAME, "td")[4].text == "echo"
                                for r in d.find_elements(By.CSS_SELECTOR, "#audit-records tbody tr")
                            )
                        ),
                    )
                    _until(driver, lambda d: "verifies" in d.find_element(By.ID, "verify").text)
                    chart = '#rates figure[data-series="tools/echo"] svg rect'
                    _until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, chart))  # the approved call
                    driver.save_screenshot(str(shots / "console-audit.png"))

                await trio.to_thread.run_sync(deny_and_filter)
                while HOSTILE not in answers:
                    await trio.sleep(0.05)
        finally:
            await trio.to_thread.run_sync(driver.quit)
    assert csrf_status.startswith("403 ")  # the page's own fetch, without the token
    assert "pwned" not in csrf_status  # the markup never ran
    assert "denied by" in answers[HOSTILE] and "not in a test" in answers[HOSTILE]
    keep = os.environ.get("WATCHGATE_CONSOLE_SHOTS")  # where to keep them (docs/images/ was made so)
    if keep:
        shutil.copytree(shots, keep, dirs_exist_ok=True)
