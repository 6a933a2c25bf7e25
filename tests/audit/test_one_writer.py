"""One audit log, one writer (design.md §12): two gateways on one log would interleave two
chains, and `verify` would then report tampering that never happened."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.audit.helpers import Clock
from watchgate.audit.chain import ChainWriter
from watchgate.audit.verify import verify_log
from watchgate.cli.main import main
from watchgate.errors import AuditLogInUse

REPO = Path(__file__).resolve().parents[2]


def test_a_second_writer_on_the_same_log_is_refused(tmp_path: Path) -> None:
    log = str(tmp_path / "audit.jsonl")
    first = ChainWriter(log, max_bytes=1 << 20, keep=3, clock=Clock())
    first.open()
    second = ChainWriter(log, max_bytes=1 << 20, keep=3, clock=Clock())
    with pytest.raises(AuditLogInUse, match=f"the audit log {log} is in use by another Watchgate"):
        second.open()
    first.close(sync=False)
    second.open()  # the first one is gone: the log is free
    second.close(sync=False)
    assert verify_log(log).ok


def test_run_beside_a_running_writer_refuses_to_start_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "wg.yaml"
    config.write_text("proxy:\n  upstreams:\n    - {name: a, command: [cat]}\n")
    holder = ChainWriter(str(tmp_path / "watchgate-audit.jsonl"), max_bytes=1 << 20, keep=3, clock=Clock())
    holder.open()
    try:
        assert main(["run", "-c", str(config)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("watchgate: the audit log ") and "in use by another Watchgate" in err
        assert "--audit-log" in err and err.count("\n") == 1
    finally:
        holder.close(sync=False)


def test_run_with_its_own_audit_log_starts_beside_a_running_writer(tmp_path: Path) -> None:
    config = tmp_path / "wg.yaml"
    config.write_text(
        f"proxy:\n  upstreams:\n    - {{name: a, command: [{sys.executable}, {REPO}/tests/servers/crashy.py]}}\n"
    )
    holder = ChainWriter(str(tmp_path / "watchgate-audit.jsonl"), max_bytes=1 << 20, keep=3, clock=Clock())
    holder.open()
    own = tmp_path / "mine.jsonl"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "watchgate.cli", "run", "-c", str(config), "--audit-log", str(own)],
            input=b"",
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert verify_log(str(own)).ok and own.stat().st_size > 0
    finally:
        holder.close(sync=False)
