"""The canary controller on real published bundles and a hand-fed metrics source: start, ticks, and the mirrors.

Every assertion on state reads the ledger back through ``replay``, and the flag file and aliases are compared
with it after each move: the ledger is the truth, the rest mirror it.
"""

from datetime import UTC, datetime, timedelta

import pytest

from bench.support.bundles import publish_unit
from release_assets.manifest.rollout import RolloutSpec
from release_assets.record.ledger import PromotionError, promote, replay
from release_assets.release.store import LocalReleaseStore
from release_assets.rollout.canary import Rollout, abort, start, tick
from release_assets.rollout.counters import Snapshot
from release_assets.rollout.metrics_source import MetricsUnavailable
from release_assets.serving.flags import canary_version, current_flags, flags_path
from release_assets_tests.rollout.test_analysis import counters

SPEC = RolloutSpec.model_validate(
    {
        "steps": [10, 50, 100],
        "bake_s": 60,
        "min_requests": 20,
        "budgets": {"error_rate": {"max_increase": 0.02}, "p99_ms": {"max_increase": 25, "max_ratio": 1.5}},
    }
)


class Source:
    """Cumulative counters per version, as the servers would report them; the test adds traffic."""

    def __init__(self) -> None:
        self.totals: dict[str, dict] = {}
        self.down = False

    def add(self, version: str, **kwargs) -> None:
        before = self.totals.get(version)
        now = counters(**kwargs)
        if before is not None:
            now = type(now)(
                **{
                    **now.__dict__,
                    "requests": before.requests + now.requests,
                    "errors": before.errors + now.errors,
                    "latency_buckets": {
                        k: v + before.latency_buckets.get(k, 0) for k, v in now.latency_buckets.items()
                    },
                    "intents": {k: v + before.intents.get(k, 0) for k, v in now.intents.items()},
                }
            )
        self.totals[version] = now

    def snapshot(self, release: str) -> Snapshot:
        if self.down:
            raise MetricsUnavailable("http://127.0.0.1:1/metrics: connection refused")
        return Snapshot(versions=dict(self.totals), sources=["test"])


class Registry:
    """The aliases a move mirrors; every published version counts as registered (the sync is tested elsewhere)."""

    tracking_uri = "fake://canary-tests"

    def __init__(self) -> None:
        self.aliases: dict[str, dict] = {}

    def has_version(self, release, version):
        return True

    def mirror(self, release, aliases):
        self.aliases[release] = {k: v for k, v in aliases.items() if v}


@pytest.fixture
def setup(tmp_path):
    store = LocalReleaseStore(tmp_path / "store")
    v1, v2 = publish_unit(store, "helpdesk", "one"), publish_unit(store, "helpdesk", "two")
    promote(store, "helpdesk", v1, "alice", "first champion")
    registry = Registry()
    rollout = Rollout(store, "helpdesk", SPEC, tmp_path / "store" / "flags", lambda: registry)
    return rollout, registry, v1, v2


def _later(r: Rollout, seconds: float) -> datetime:
    started = r.state().canary.step_started
    return datetime.fromisoformat(started) + timedelta(seconds=seconds)


def _mirrors_agree(r: Rollout, registry: Registry) -> None:
    state = replay(r.store.events(r.release))
    assert registry.aliases[r.release].get("canary") == (state.canary.version if state.canary else None)
    assert registry.aliases[r.release]["champion"] == state.champion
    assert canary_version(r.store, r.release) == (state.canary.version if state.canary else None)
    if state.canary:
        flags = current_flags(r.flags_dir, r.release)  # a folder's file, or the S3 store's object
        split = flags["flags"][f"{r.release}.route"]["targeting"]["fractional"]
        assert split[-1] == ["canary", state.canary.percent]


def test_a_healthy_canary_bakes_advances_and_becomes_champion(setup):
    r, registry, v1, v2 = setup
    source = Source()
    source.add(v1, requests=500)  # history before the canary: not part of the first window
    start(r, v2, "bob", "new prompts", source=source)
    _mirrors_agree(r, registry)
    source.add(v1, requests=100)
    source.add(v2, requests=30)
    assert tick(r, source, _later(r, 10)).action == "bake"
    advanced = tick(r, source, _later(r, 61))
    assert advanced.action == "advanced" and advanced.canary.percent == 50
    _mirrors_agree(r, registry)
    # The new step's window starts now: without new traffic it holds, whatever the bake time.
    assert tick(r, source, _later(r, 61)).action == "hold"
    source.add(v1, requests=40)
    source.add(v2, requests=40)
    promoted = tick(r, source, _later(r, 61))
    assert promoted.action == "promoted"
    state = replay(r.store.events(r.release))
    assert (state.champion, state.canary) == (v2, None)
    [event] = [e for e in r.store.events("helpdesk") if e["action"] == "promoted"][-1:]
    assert (event["actor"], event["via"]) == ("bob", "canary_monitor")  # the approval given at start
    _mirrors_agree(r, registry)


def test_a_breach_after_the_bake_time_rolls_back_in_one_tick(setup):
    r, registry, v1, v2 = setup
    source = Source()
    start(r, v2, "bob", "risky", source=source)
    source.add(v1, requests=100)
    source.add(v2, requests=30, errors=9)
    assert tick(r, source, _later(r, 30)).action == "bake"  # judged only after the bake time
    rolled = tick(r, source, _later(r, 61))
    assert rolled.action == "rolled_back"
    [event] = [e for e in r.store.events("helpdesk") if e["action"] == "rolled_back"]
    assert (event["actor"], event["scope"], event["from_version"], event["to_version"]) == (
        "canary_monitor",
        "canary",
        v2,
        v1,
    )
    assert event["kpis"][0]["name"] == "error_rate" and event["kpis"][0]["canary"] == 0.3
    state = replay(r.store.events("helpdesk"))
    assert (state.champion, state.canary) == (v1, None)  # the champion never moved
    _mirrors_agree(r, registry)
    assert tick(r, source, _later(r, 0) if state.canary else None).action == "idle"


def test_failures_to_rollback_counts_failed_analyses_in_a_row(setup):
    r, _registry, v1, v2 = setup
    r.spec = SPEC.model_copy(update={"failures_to_rollback": 2})
    source = Source()
    start(r, v2, "bob", "risky", source=source)
    source.add(v1, requests=100)
    source.add(v2, requests=30, errors=9)
    assert tick(r, source, _later(r, 61)).action == "breach"
    assert replay(r.store.events("helpdesk")).canary.breaches == 1
    assert tick(r, source, _later(r, 61)).action == "rolled_back"


def test_too_little_traffic_holds_and_unreadable_metrics_hold(setup):
    r, _, v1, v2 = setup
    source = Source()
    start(r, v2, "bob", "quiet hours", source=source)
    source.add(v1, requests=100)
    source.add(v2, requests=3)
    held = tick(r, source, _later(r, 3600))
    assert held.action == "hold" and "canary 3 of 20" in held.note
    source.down = True
    assert tick(r, source, _later(r, 3600)).action == "unavailable"
    assert replay(r.store.events("helpdesk")).canary.step == 0


def test_a_canary_started_without_metrics_takes_its_baseline_at_the_first_readable_tick(setup):
    r, _, v1, v2 = setup
    source = Source()
    source.add(v1, requests=500, errors=15)  # an earlier rollout's errors, before this canary
    source.add(v2, requests=50, errors=20)
    source.down = True
    start(r, v2, "bob", "metrics were down", source=source)
    assert replay(r.store.events("helpdesk")).canary.baseline is None
    assert tick(r, source, _later(r, 3600)).action == "unavailable"
    source.down = False
    baselined = tick(r, source, _later(r, 3600))
    assert baselined.action == "baselined" and "no baseline was recorded" in baselined.note
    [event] = [e for e in r.store.events("helpdesk") if e["action"] == "canary_baselined"]
    assert event["baseline"]["versions"][v2]["errors"] == 20
    state = replay(r.store.events("helpdesk"))
    assert state.canary.baseline == event["baseline"] and state.canary.step_started == event["time"]
    # Judged only on what came after the baseline: 344 clean canary answers, the old 20 errors not counted.
    source.add(v1, requests=400)
    source.add(v2, requests=344)
    assert tick(r, source, _later(r, 61)).action == "advanced"


def test_a_restarted_monitor_resumes_at_the_recorded_step_and_restores_the_flag_file(setup):
    r, registry, v1, v2 = setup
    source = Source()
    start(r, v2, "bob", "resume", source=source)
    source.add(v1, requests=100)
    source.add(v2, requests=30)
    tick(r, source, _later(r, 61))
    flags_path(r.flags_dir, "helpdesk").unlink()  # lost with the old process's disk, or edited by hand
    again = Rollout(r.store, "helpdesk", SPEC, r.flags_dir, lambda: registry)  # a new process: only the ledger
    t = tick(again, source, _later(again, 1))
    assert (t.action, t.canary.percent) == ("bake", 50)
    _mirrors_agree(again, registry)


def test_servers_restarting_mid_step_reset_the_window(setup):
    r, _, v1, v2 = setup
    source = Source()
    source.add(v1, requests=1000)
    start(r, v2, "bob", "restart", source=source)
    source.totals = {}  # every server restarted: counters start again from zero
    source.add(v1, requests=50)
    source.add(v2, requests=25)
    assert tick(r, source, _later(r, 61)).action == "advanced"


def test_start_refusals(setup, tmp_path):
    r, _, v1, v2 = setup
    with pytest.raises(PromotionError, match="already the champion"):
        start(r, v1, "bob", "x")
    with pytest.raises(PromotionError, match="never published"):
        start(r, "0" * 16, "bob", "x")
    failed = publish_unit(
        r.store,
        "helpdesk",
        "three",
        gates=[{"member": "m", "gate": "accuracy", "status": "failed", "severity": "block", "reason": "0.5 < 0.9"}],
    )
    with pytest.raises(PromotionError, match="did not pass all its gates"):
        start(r, failed, "bob", "x")
    with pytest.raises(PromotionError, match="approved_by"):
        start(r, v2, " ", "x")
    r.spec = SPEC.model_copy(update={"require_shadow": True})
    with pytest.raises(PromotionError, match="no live shadow report"):
        start(r, v2, "bob", "x")
    r.store.append_event(
        "helpdesk",
        {
            "action": "shadow_reported",
            "release": "helpdesk",
            "to_version": v2,
            "from_version": v1,
            "passed": False,
            "reason": "intent agreement 0.6",
            "actor": "a",
            "time": datetime.now(UTC).isoformat(),
        },
    )
    with pytest.raises(PromotionError, match="latest shadow report failed"):
        start(r, v2, "bob", "x")
    r.spec = SPEC
    start(r, v2, "bob", "x")
    with pytest.raises(PromotionError, match="already has canary"):
        start(r, v2, "bob", "x")
    nobody = Rollout(LocalReleaseStore(tmp_path / "empty"), "helpdesk", SPEC, tmp_path / "f")
    publish_unit(nobody.store, "helpdesk", "one")
    with pytest.raises(PromotionError, match="no champion"):
        start(nobody, v1, "bob", "x")


def test_abort_and_a_champion_moved_underneath_end_the_canary(setup):
    r, registry, _v1, v2 = setup
    start(r, v2, "bob", "try")
    abort(r, "carol", "support tickets spiking")
    assert replay(r.store.events("helpdesk")).canary is None
    _mirrors_agree(r, registry)
    with pytest.raises(PromotionError, match="no canary"):
        abort(r, "carol", "again")
    start(r, v2, "bob", "try again")
    v3 = publish_unit(r.store, "helpdesk", "three")
    promote(r.store, "helpdesk", v3, "dave", "hotfix")  # someone promoted by hand meanwhile
    t = tick(r, Source())
    assert t.action == "aborted" and "champion moved" in t.note
    assert replay(r.store.events("helpdesk")).canary is None
