from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Pins never land in the real home or next to the repo's configs."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("WATCHGATE_STATE_DIR", str(state))
    return state
