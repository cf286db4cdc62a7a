"""The circuit breaker on an injected clock: when it opens, how it half-opens, and what the app-facing registry
routes and reports."""

from __future__ import annotations

import logging
import threading

import pytest

from release_assets.cli.serving import _breaker_policies
from release_assets.serving.breaker import CLOSED, HALF_OPEN, OPEN, BreakerPolicy, Breakers, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(rate=0.5, window=10, min_requests=4, cooldown_s=30.0):
    clock = Clock()
    return CircuitBreaker(BreakerPolicy(rate, window, min_requests, cooldown_s), clock), clock


def test_opens_when_the_failure_share_reaches_the_threshold():
    b, _ = breaker()
    changes = [b.record(failed) for failed in (False, True, False)]
    assert changes == [False, False, False] and b.state == CLOSED
    assert b.record(True) is True  # 2 of 4 = 0.5 >= 0.5
    assert b.state == OPEN and b.is_open and not b.allow()


def test_not_below_min_requests_even_if_all_failed():
    b, _ = breaker(min_requests=4)
    assert [b.record(True) for _ in range(3)] == [False, False, False]
    assert b.state == CLOSED and b.allow()
    assert b.record(True) and b.state == OPEN


def test_the_window_rolls_old_failures_out():
    b, _ = breaker(rate=0.5, window=4, min_requests=4)
    for failed in (True, False, False, False, True, False, False, False):  # never 2 failures within 4
        assert not b.record(failed)
    assert b.state == CLOSED and b.failure_share() == (1, 4)


def test_half_open_lets_one_probe_through_and_a_success_closes():
    b, clock = breaker(cooldown_s=30)
    for _ in range(4):
        b.record(True)
    clock.now += 29.9
    assert b.state == OPEN and not b.allow()
    clock.now += 0.2
    assert b.state == HALF_OPEN and b.is_open
    assert b.allow() and not b.allow()  # one probe only
    assert b.record(False) is True
    assert b.state == CLOSED and b.failure_share() == (0, 0)  # the window starts afresh
    assert [b.record(True) for _ in range(3)] == [False] * 3  # needs min_requests again to reopen


def test_half_open_failure_reopens_for_a_new_cooldown():
    b, clock = breaker(cooldown_s=30)
    for _ in range(4):
        b.record(True)
    clock.now += 31
    assert b.allow()
    assert b.record(True) is False  # still open: no change of the open/closed state
    assert b.state == OPEN and not b.allow()
    clock.now += 29
    assert b.state == OPEN
    clock.now += 2
    assert b.state == HALF_OPEN and b.allow()


def test_outcomes_in_flight_while_open_are_ignored_and_a_lost_probe_expires():
    b, clock = breaker(cooldown_s=30)
    for _ in range(4):
        b.record(True)
    assert b.record(False) is False and b.state == OPEN  # an answer started before it opened
    clock.now += 31
    assert b.allow()  # the probe ends in a 4xx: no outcome ever comes
    clock.now += 10
    assert not b.allow()
    clock.now += 21
    assert b.allow()


def test_policy_is_validated_naming_the_field():
    assert BreakerPolicy(0.5, 20, 10).cooldown_s == 30.0
    for args, field in [
        ((0, 20, 10), "failure_rate"),
        ((1.5, 20, 10), "failure_rate"),
        ((0.5, 0, 1), "window"),
        ((0.5, 20, 0), "min_requests"),
        ((0.5, 20, 21), "min_requests"),
        ((0.5, 20, 10, -1), "cooldown_s"),
        ((True, 20, 10), "failure_rate"),
    ]:
        with pytest.raises(ValueError, match=rf"circuit_breaker\.{field}"):
            BreakerPolicy(*args)
    with pytest.raises(AttributeError):
        BreakerPolicy(0.5, 20, 10).window = 3  # frozen


def test_registry_routes_canaries_only_and_reports_state_changes(caplog):
    clock = Clock()
    breakers = Breakers({"helpdesk": BreakerPolicy(0.5, 4, 2, 30.0)}, clock)
    assert breakers.get("iris", "v1") is None and breakers.record("iris", "v1", "champion", True) is None
    assert breakers.route("helpdesk", "canary", "v2") == ("canary", "v2")
    assert breakers.record("helpdesk", "v2", "canary", False) is False  # new breaker: its gauge appears, closed
    assert breakers.record("helpdesk", "v2", "canary", False) is None  # no change
    assert breakers.record("helpdesk", "v2", "canary", True) is None  # 1 of 3
    with caplog.at_level(logging.WARNING, logger="release_assets.serving.breaker"):
        assert breakers.record("helpdesk", "v2", "canary", True) is True  # 2 of 4
    assert "OPEN for helpdesk v2" in caplog.text
    assert breakers.route("helpdesk", "canary", "v2") == ("champion", None)
    assert breakers.route("helpdesk", "champion", None) == ("champion", None)
    clock.now += 31
    assert breakers.route("helpdesk", "canary", "v2") == ("canary", "v2")  # the probe
    assert breakers.route("helpdesk", "canary", "v2") == ("champion", None)
    assert breakers.record("helpdesk", "v2", "canary", False) is False  # closed again


def test_an_open_champion_is_warned_about_once_a_minute(caplog):
    clock = Clock()
    breakers = Breakers({"helpdesk": BreakerPolicy(1.0, 2, 2, 30.0)}, clock)
    with caplog.at_level(logging.WARNING, logger="release_assets.serving.breaker"):
        breakers.record("helpdesk", "v1", "champion", True)
        assert breakers.record("helpdesk", "v1", "champion", True) is True
        for _ in range(5):
            clock.now += 1
            breakers.record("helpdesk", "v1", "champion", True)
        assert sum("nothing safer" in m for m in caplog.messages) == 0  # the opening message said it already
        clock.now += 60
        breakers.record("helpdesk", "v1", "champion", True)
    assert sum("nothing safer" in m for m in caplog.messages) == 1


def test_concurrent_records_lose_no_outcome():
    b = CircuitBreaker(BreakerPolicy(1.0, 1000, 1000))
    threads = [threading.Thread(target=lambda: [b.record(False) for _ in range(200)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert b.failure_share() == (0, 800)


def test_serve_reads_policies_from_the_manifest_rollout_section():
    from release_assets.manifest import load_manifests
    from release_assets_tests.conftest import REPO

    manifests = {m.name: m for m in load_manifests(REPO / "releases")}
    policies = _breaker_policies(list(manifests.values()))
    assert policies["helpdesk"] == BreakerPolicy(0.5, 20, 10, 30.0)
    assert "kbqa" not in policies  # no rollout section: no breaker
    without = manifests["iris"].model_copy(
        update={"rollout": manifests["iris"].rollout.model_copy(update={"circuit_breaker": None})}
    )
    assert _breaker_policies([without]) == {}
