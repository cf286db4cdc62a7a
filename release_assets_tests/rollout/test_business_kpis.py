"""Business KPIs from feedback in the canary's decisions: budgets on the unresolved, thumbs-down and false
escalation rates, held while feedback is thin, judged by a two-proportion test, and a canary rolled back on them."""

from __future__ import annotations

from dataclasses import replace

from release_assets.manifest.rollout import RolloutSpec
from release_assets.record.ledger import replay
from release_assets.rollout import judgement
from release_assets.rollout.analysis import analyse
from release_assets.rollout.canary import start, tick
from release_assets.rollout.counters import Snapshot, snapshot_from_dict, snapshot_to_dict, window
from release_assets_tests.rollout.test_analysis import counters
from release_assets_tests.rollout.test_canary import Source, _later
from release_assets_tests.rollout.test_canary import setup as setup  # the fixture

SPEC = RolloutSpec.model_validate(
    {
        "steps": [10, 50, 100],
        "bake_s": 60,
        "min_requests": 20,
        "min_feedback": 20,
        "budgets": {
            "error_rate": {"max_increase": 0.02},
            "unresolved_rate": {"max_increase": 0.1},
            "false_escalation_rate": {"max": 0.3},
        },
    }
)


def with_feedback(resolved=0, unresolved=0, needed=0, not_needed=0, **kwargs):
    return replace(
        counters(**kwargs),
        resolved=float(resolved),
        unresolved=float(unresolved),
        escalation_needed=float(needed),
        escalation_not_needed=float(not_needed),
    )


def test_a_business_budget_breaches_on_enough_feedback_and_holds_on_too_little():
    champion = with_feedback(resolved=45, unresolved=5, needed=10, not_needed=2)
    worse = analyse(with_feedback(resolved=30, unresolved=20, needed=10, not_needed=2), champion, SPEC, 0, 61)
    assert worse.decision == "breach" and "unresolved_rate 0.4 vs champion 0.1" in worse.reason
    kpi = {k.name: k for k in worse.kpis}
    assert kpi["unresolved_rate"].breached is True
    assert kpi["false_escalation_rate"].breached is None  # 12 escalation answers a side: not judged
    assert "judged from 20 feedback answers a side; 12 here" in kpi["false_escalation_rate"].budget
    # Same outcomes, too few answers: neither pass nor fail, the canary holds.
    thin = analyse(with_feedback(resolved=6, unresolved=4), with_feedback(resolved=9, unresolved=1), SPEC, 0, 61)
    assert thin.decision == "hold" and "too little feedback for unresolved_rate, false_escalation_rate" in thin.reason
    assert all(k.breached is None for k in thin.kpis if k.name != "error_rate" and k.name != "p99_ms")
    good = with_feedback(resolved=45, unresolved=5, needed=20, not_needed=2)
    assert analyse(good, replace(good), SPEC, 0, 61).decision == "advance"


def test_the_statistical_judgement_tests_business_kpis_by_two_proportions_and_is_nodata_without_feedback():
    spec = RolloutSpec.model_validate(
        {
            "steps": [10, 100],
            "bake_s": 0,
            "min_requests": 20,
            "judgement": {"metrics": {"unresolved_rate": {"critical": True, "tolerance": 0.02}}},
        }
    )
    champion = with_feedback(requests=2000, resolved=450, unresolved=50)
    worse = judgement.judge(with_feedback(requests=2000, resolved=350, unresolved=150), champion, spec)
    [result] = [m for m in worse.metrics if m.name == "unresolved_rate"]
    assert (result.outcome, result.samples, result.effect) == ("fail", (500.0, 500.0), 0.2)
    assert worse.verdict == "fail"  # critical
    starved = judgement.judge(with_feedback(requests=2000, resolved=8, unresolved=2), champion, spec)
    [result] = [m for m in starved.metrics if m.name == "unresolved_rate"]
    assert result.outcome == "nodata" and result.samples == (10.0, 500.0)
    same = judgement.judge(with_feedback(requests=2000, resolved=448, unresolved=52), champion, spec)
    assert [m.outcome for m in same.metrics if m.name == "unresolved_rate"] == ["pass"]


def test_feedback_counts_survive_windows_and_the_ledgers_snapshot_format():
    before = Snapshot({"v2": with_feedback(resolved=5, unresolved=1)})
    after = Snapshot({"v2": with_feedback(requests=200, resolved=15, unresolved=4)})
    between = window(before, after).versions["v2"]
    assert (between.resolved, between.unresolved) == (10, 3)
    assert snapshot_from_dict(snapshot_to_dict(after)) == after
    old = snapshot_to_dict(Snapshot({"v2": counters()}))
    for name in ("resolved", "unresolved", "thumbs_up", "thumbs_down", "escalation_needed", "escalation_not_needed"):
        del old["versions"]["v2"][name]  # a baseline recorded before feedback existed
    assert snapshot_from_dict(old).versions["v2"].resolved == 0


def test_a_canary_users_find_less_helpful_is_rolled_back_on_its_business_budget(setup):
    r, _, v1, v2 = setup
    r = replace(r, spec=SPEC)
    source = Source()
    start(r, v2, "bob", "new prompts", source=source)
    # Technically flawless (no errors, same latency and intents), but users mark 40% of its answers unresolved.
    source.totals[v1] = with_feedback(requests=200, resolved=45, unresolved=5, needed=25, not_needed=5)
    source.totals[v2] = with_feedback(requests=40, resolved=30, unresolved=20, needed=25, not_needed=5)
    rolled = tick(r, source, _later(r, 61))
    assert rolled.action == "rolled_back"
    [event] = [e for e in r.store.events("helpdesk") if e["action"] == "rolled_back"]
    breached = [k for k in event["kpis"] if k["breached"]]
    assert [(k["name"], k["canary"], k["champion"]) for k in breached] == [("unresolved_rate", 0.4, 0.1)]
    state = replay(r.store.events("helpdesk"))
    assert (state.champion, state.canary) == (v1, None)
