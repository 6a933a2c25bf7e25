"""Fixtures for the actors tests."""

from __future__ import annotations

import pytest

from .helpers import Log, Recorder


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
