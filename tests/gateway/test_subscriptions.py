"""Subscriptions and log levels shared by several clients: when the upstream must be told."""

from watchgate.gateway.router.subscriptions import LogLevels, Subscriptions


def test_only_the_first_and_last_subscriber_reach_the_upstream() -> None:
    subs = Subscriptions()
    assert subs.add("fs+file:///a", 1) is True
    assert subs.add("fs+file:///a", 2) is False
    assert subs.holders("fs+file:///a") == {1, 2}
    assert subs.remove("fs+file:///a", 3) is None  # never subscribed
    assert subs.remove("fs+file:///a", 1) is False
    assert subs.remove("fs+file:///a", 2) is True
    assert subs.holders("fs+file:///a") == frozenset()


def test_a_departing_client_releases_everything_it_held() -> None:
    subs = Subscriptions()
    subs.add("a", 1)
    subs.add("b", 1)
    subs.add("b", 2)
    assert sorted(subs.forget(1)) == [("a", True), ("b", False)]
    assert subs.forget(1) == []


def test_the_most_verbose_level_wins_and_changes_are_reported_once() -> None:
    levels = LogLevels()
    assert levels.forget(9) is None
    assert levels.ask(1, "error") == "error"
    assert levels.ask(2, "debug") == "debug"
    assert levels.ask(3, "info") is None  # debug is still the most verbose
    assert levels.forget(2) == "info"
    assert levels.forget(3) == "error"
    assert levels.forget(1) is None  # nobody asks: the upstreams keep what they have
    assert levels.current == "error"
