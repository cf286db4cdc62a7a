"""Breakers shared by the workers of one server: a canary one worker's breaker opened is routed around by every
worker for the cooldown, and a probe that closes it clears it for all. Two ``Breakers`` over one board folder
stand for two worker processes (the board is files, so processes share it the same way)."""

from __future__ import annotations

from release_assets.serving.breaker import BreakerPolicy, Breakers
from release_assets.serving.breaker_board import BreakerBoard

POLICY = BreakerPolicy(failure_rate=0.5, window=4, min_requests=4, cooldown_s=30.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_canary_one_worker_opens_is_routed_around_by_every_worker_until_a_probe_closes_it(tmp_path):
    wall, mono = Clock(), Clock()
    board = lambda: BreakerBoard(tmp_path / "breakers", refresh_s=0.0, clock=wall)  # noqa: E731
    a = Breakers({"helpdesk": POLICY}, mono, board=board())
    b = Breakers({"helpdesk": POLICY}, mono, board=board())
    assert b.route("helpdesk", "canary", "v2") == ("canary", "v2")
    for _ in range(4):  # worker a's answers from v2 all fail: its breaker opens
        a.record("helpdesk", "v2", "canary", True)
    assert a.route("helpdesk", "canary", "v2") == ("champion", None)
    assert b.route("helpdesk", "canary", "v2") == ("champion", None)  # b saw no failure itself
    assert b.route("helpdesk", "champion", None) == ("champion", None)  # the champion is never routed around
    wall.now += 31  # past the cooldown: the board no longer holds b back
    assert b.route("helpdesk", "canary", "v2") == ("canary", "v2")
    mono.now += 31  # a half-opens, its probe succeeds: closed, and the board is cleared
    assert a.route("helpdesk", "canary", "v2") == ("canary", "v2")
    a.record("helpdesk", "v2", "canary", False)
    assert not (tmp_path / "breakers" / "helpdesk" / "v2").exists()
    assert BreakerBoard(tmp_path / "breakers", clock=wall).open_since("helpdesk", "v2") is None


def test_reads_are_cached_for_the_refresh_interval_and_a_garbled_file_reads_as_closed(tmp_path):
    wall = Clock()
    writer = BreakerBoard(tmp_path, refresh_s=0.2, clock=wall)
    reader = BreakerBoard(tmp_path, refresh_s=0.2, clock=wall)
    assert reader.open_since("helpdesk", "v2") is None
    writer.opened("helpdesk", "v2")
    assert reader.open_since("helpdesk", "v2") is None  # looked 0 s ago: the cached answer
    wall.now += 0.3
    assert reader.open_since("helpdesk", "v2") == 1000.0
    (tmp_path / "helpdesk" / "v2").write_text("not a time")
    wall.now += 0.3
    assert reader.open_since("helpdesk", "v2") is None
