"""Calls per server and tool over the last hour (gateway/callrates.py): a bucket a minute."""

from __future__ import annotations

from watchgate.gateway.callrates import MINUTES, CallRates


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


def test_calls_count_in_their_minute_with_latency_and_errors() -> None:
    clock = Clock()
    rates = CallRates(clock)
    rates.count("fs", "read", started=clock.now - 0.010, error=False)
    rates.count("fs", "read", started=clock.now - 0.030, error=True)
    clock.now += 120
    rates.count("fs", "read", started=clock.now - 0.002, error=False)
    ((series,),) = [rates.last_hour()]
    assert (series["server"], series["tool"], len(series["points"])) == ("fs", "read", MINUTES)
    two_ago, now = series["points"][-3], series["points"][-1]
    assert (two_ago["calls"], two_ago["errors"], two_ago["mean_ms"], two_ago["max_ms"]) == (2, 1, 20.0, 30.0)
    assert (now["calls"], now["max_ms"]) == (1, 2.0)
    assert sum(p["calls"] for p in series["points"]) == 3


def test_an_hour_later_the_old_minutes_are_gone() -> None:
    clock = Clock()
    rates = CallRates(clock)
    rates.count("fs", "read", started=clock.now, error=False)
    clock.now += MINUTES * 60
    assert rates.last_hour() == []  # nothing in the last hour: no series
    rates.count("fs", "read", started=clock.now, error=False)
    (series,) = rates.last_hour()
    assert sum(p["calls"] for p in series["points"]) == 1
