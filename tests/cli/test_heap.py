"""The process entries raise the young generation's collection threshold (``cli/heap.py``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from watchgate.cli.heap import YOUNG_THRESHOLD, tune_collector


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    gc.set_threshold(700, 11, 12)
    yield gc.get_threshold()
    gc.set_threshold(*before)


def test_only_the_young_generation_is_collected_later(thresholds: tuple[int, int, int]) -> None:
    tune_collector()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 11, 12)
