"""Pure policy arithmetic: backoff delays, restart decisions, the intensity window."""

from __future__ import annotations

import random

import pytest

from actors import ActorError, Backoff, RestartPolicy, RestartType, UnknownChild
from actors.intensity import RestartIntensity


def test_backoff_grows_exponentially_and_caps_at_max() -> None:
    backoff = Backoff(initial=0.5, max=5.0, multiplier=3.0, jitter=0.0)
    assert [backoff.delay(n) for n in range(5)] == [0.5, 1.5, 4.5, 5.0, 5.0]
    assert backoff.delay(10_000) == 5.0  # no overflow for absurd attempt numbers


def test_default_backoff_doubles_from_half_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "random", lambda: 0.0)
    assert [Backoff().delay(n) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]


def test_backoff_jitter_is_proportional_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    backoff = Backoff(initial=1.0, max=10.0, multiplier=2.0, jitter=0.5)
    monkeypatch.setattr(random, "random", lambda: 1.0)  # largest possible jitter
    assert [backoff.delay(n) for n in range(5)] == [1.5, 3.0, 6.0, 10.0, 10.0]
    monkeypatch.setattr(random, "random", lambda: 0.5)
    assert backoff.delay(1) == 2.5


def test_backoff_jitter_stays_in_bounds_and_varies() -> None:
    backoff = Backoff(initial=1.0, max=100.0, multiplier=2.0, jitter=0.1)
    samples = [backoff.delay(2) for _ in range(200)]
    assert all(4.0 <= s <= 4.4 for s in samples)
    assert len(set(samples)) > 1


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": -1.0}, {"max": -1.0}, {"jitter": -0.1}, {"multiplier": 0.5}],
)
def test_backoff_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_backoff_rejects_negative_attempt() -> None:
    with pytest.raises(ValueError, match="attempt"):
        Backoff().delay(-1)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_restarts": -1}, {"within_seconds": 0.0}, {"reset_after": -1.0}],
)
def test_restart_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RestartPolicy(**kwargs)  # type: ignore[arg-type]


def test_restart_policy_defaults() -> None:
    p = RestartPolicy()
    assert (p.restart, p.max_restarts, p.within_seconds, p.reset_after) == (
        RestartType.PERMANENT,
        5,
        60.0,
        60.0,
    )
    assert p.backoff == Backoff()


@pytest.mark.parametrize(
    ("restart", "normal", "abnormal"),
    [
        (RestartType.PERMANENT, True, True),
        (RestartType.TRANSIENT, False, True),
        (RestartType.TEMPORARY, False, False),
    ],
)
def test_restarts_after(restart: RestartType, normal: bool, abnormal: bool) -> None:
    p = RestartPolicy(restart=restart)
    assert p.restarts_after(abnormal=False) is normal
    assert p.restarts_after(abnormal=True) is abnormal


FLAT = Backoff(initial=1.0, max=8.0, jitter=0.0)


def test_intensity_sliding_window() -> None:
    meter = RestartIntensity(RestartPolicy(max_restarts=2, within_seconds=10.0, backoff=FLAT))
    assert meter.next_delay(0.0, None) == 1.0
    assert meter.next_delay(1.0, None) == 2.0
    assert meter.next_delay(9.0, None) is None  # third restart within 10s
    assert meter.attempt == 2  # a refused restart is not counted
    assert meter.next_delay(10.0, None) == 4.0  # the restart at t=0 has left the window
    assert meter.next_delay(10.5, None) is None


def test_intensity_zero_restarts_fails_immediately() -> None:
    meter = RestartIntensity(RestartPolicy(max_restarts=0, backoff=FLAT))
    assert meter.next_delay(0.0, 100.0) is None


def test_intensity_attempt_resets_after_a_long_run() -> None:
    meter = RestartIntensity(
        RestartPolicy(max_restarts=100, within_seconds=1.0, reset_after=30.0, backoff=FLAT)
    )
    assert [meter.next_delay(t, 1.0) for t in (0.0, 10.0, 20.0)] == [1.0, 2.0, 4.0]
    assert meter.next_delay(60.0, 29.9) == 8.0  # not quite long enough
    assert meter.next_delay(100.0, 30.0) == 1.0  # ran >= reset_after: back to attempt 0
    assert meter.next_delay(110.0, None) == 2.0  # never RUNNING: no reset


def test_intensity_reset_clears_window_and_attempt() -> None:
    meter = RestartIntensity(RestartPolicy(max_restarts=1, backoff=FLAT))
    assert meter.next_delay(0.0, None) == 1.0
    assert meter.next_delay(0.0, None) is None
    meter.reset()
    assert meter.next_delay(0.0, None) == 1.0


def test_unknown_child_lists_known_names() -> None:
    err = UnknownChild("x", ["a", "b"])
    assert isinstance(err, ActorError)
    assert str(err) == "unknown child 'x' (known: a, b)"
    assert err.name == "x"
    assert err.known == ("a", "b")
    assert str(UnknownChild("x", [])) == "unknown child 'x' (known: none)"
