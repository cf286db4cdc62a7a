"""The canary analysis on hand-made counters: each rule of the policy, and each budget, made to decide."""

import math
from dataclasses import replace

import pytest
from pydantic import ValidationError

from release_assets.manifest import ManifestError, parse_manifest
from release_assets.manifest.rollout import Budget, RolloutSpec
from release_assets.rollout.analysis import analyse, intent_distance, over_budget
from release_assets.rollout.counters import VersionCounters

SPEC = RolloutSpec.model_validate(
    {
        "steps": [10, 50, 100],
        "bake_s": 60,
        "min_requests": 20,
        "budgets": {
            "error_rate": {"max_increase": 0.02},
            "schema_failure_rate": {"max_increase": 0.02},
            "p99_ms": {"max_increase": 25, "max_ratio": 1.5},
            "escalation_rate": {"max_increase": 0.05},
            "abstain_rate": {"max_increase": 0.05},
            "intent_distance": {"max": 0.15},
        },
    }
)


def counters(requests=100, errors=0, schema=0, escalations=0, abstentions=0, intents=None, ms=5.0, circuit=False):
    """``requests`` answers, all of them taking about ``ms`` (one histogram bucket wide around it)."""
    edges = [0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, math.inf]
    buckets = {le: (float(requests) if le * 1000 >= ms else 0.0) for le in edges}
    return VersionCounters(
        requests=float(requests),
        errors=float(errors),
        schema_failures=float(schema),
        escalations=float(escalations),
        abstentions=float(abstentions),
        intents=intents if intents is not None else {"refund": requests / 2, "order_status": requests / 2},
        latency_buckets=buckets,
        circuit_open=circuit,
    )


def test_healthy_canary_advances_after_its_bake_time_and_promotes_at_the_last_step():
    assert analyse(counters(), counters(), SPEC, 0, 30).decision == "bake"
    advanced = analyse(counters(), counters(), SPEC, 0, 61)
    assert (advanced.decision, advanced.next_percent) == ("advance", 50)
    budgeted = [k for k in advanced.kpis if k.budget != "no budget"]  # no budget on feedback here
    assert len(budgeted) == 6 and all(k.breached is False for k in budgeted)
    assert analyse(counters(), counters(), SPEC, 1, 61).decision == "promote"  # the next step is 100%


def test_shed_requests_are_reported_beside_the_verdict_never_judged_as_errors():
    healthy = analyse(counters(), counters(), SPEC, 0, 61, shed=500.0)
    assert healthy.decision == "advance" and healthy.shed_requests == 500.0
    assert all(not k.breached for k in healthy.kpis)
    thin = analyse(counters(requests=3), counters(), SPEC, 0, 61, shed=40.0)
    assert thin.decision == "hold" and "40 more shed by admission control" in thin.reason
    assert thin.as_dict()["shed_requests"] == 40.0


def test_too_little_traffic_holds_and_never_promotes():
    for canary, champion in ((counters(5), counters()), (counters(), counters(3)), (counters(0), counters(0))):
        held = analyse(canary, champion, SPEC, 1, 10_000)
        assert held.decision == "hold"
        assert "inconclusive" in held.reason


@pytest.mark.parametrize(
    ("kpi", "canary"),
    [
        ("error_rate", counters(errors=10)),
        ("schema_failure_rate", counters(schema=5)),
        ("p99_ms", counters(ms=60)),  # +50 ms on a 5 ms champion
        ("escalation_rate", counters(escalations=20)),
        ("abstain_rate", counters(abstentions=20)),
        ("intent_distance", counters(intents={"refund": 90, "order_status": 10})),
    ],
)
def test_each_budget_breaches(kpi, canary):
    breach = analyse(canary, counters(), SPEC, 0, 61)
    assert breach.decision == "breach"
    assert [k.name for k in breach.breached] == [kpi]
    assert kpi in breach.reason


def test_latency_breaches_only_when_every_bound_is_exceeded():
    budget = Budget(max_increase=25, max_ratio=1.5)
    assert not over_budget(160, 130, budget)  # +30 ms, but only 1.23x: a busy machine slows both
    assert not over_budget(9, 5, budget)  # 1.8x, but only +4 ms
    assert over_budget(60, 5, budget)


def test_p99_is_not_judged_on_fewer_than_100_answers_a_side():
    slow_few = analyse(counters(60, ms=60), counters(60), SPEC.model_copy(update={"min_requests": 50}), 0, 61)
    [p99] = [k for k in slow_few.kpis if k.name == "p99_ms"]
    assert p99.breached is None and p99.canary > 25 and "judged from 100 answers" in p99.budget
    assert slow_few.decision == "advance"


def test_p99_counts_answers_not_latency_samples_of_refused_requests():
    # 96 answers that reached the model, and 8 more timed requests a server refused as bad input (4xx).
    slow = counters(96, ms=60)
    slow = replace(slow, latency_buckets={le: n + 8 for le, n in slow.latency_buckets.items()})
    analysis = analyse(slow, counters(200), SPEC.model_copy(update={"min_requests": 50}), 0, 61)
    [p99] = [k for k in analysis.kpis if k.name == "p99_ms"]
    assert p99.breached is None and "96 here" in p99.budget


def test_an_open_circuit_breaker_is_a_breach_even_while_baking():
    assert analyse(counters(circuit=True), counters(), SPEC, 0, 1).decision == "breach"


def test_drifted_live_inputs_hold_the_ramp():
    held = analyse(counters(), counters(), SPEC, 0, 61, drift={"verdict": "drifted", "reason": "length"})
    assert held.decision == "hold"


def test_intent_distance():
    assert intent_distance({"a": 1}, {"a": 5}) == 0
    assert intent_distance({"a": 1}, {"b": 1}) == 1
    assert intent_distance({}, {"a": 1}) is None


@pytest.mark.parametrize(
    ("rollout", "message"),
    [
        ({"steps": [50, 10, 100]}, "steps must rise"),
        ({"steps": [10, 50]}, "last step must be 100"),
        ({"steps": [100]}, "at least 2"),
        ({"steps": [0, 100]}, "percentage above 0"),
        ({"steps": [10, 100], "budgets": {"p99_ms": {}}}, "a budget needs"),
        ({"steps": [10, 100], "budgets": {"latency": {"max": 1}}}, "rollout.budgets.latency"),
        ({"steps": [10, 100], "circuit_breaker": {"failure_rate": 0.5, "window": 5, "min_requests": 10}}, "window"),
    ],
)
def test_a_rollout_section_that_could_not_work_fails_when_the_manifest_loads(rollout, message):
    data = {"name": "r", "members": {"d": {"kind": "sklearn_dataset", "name": "iris", "split": {"test": 0.2}}}}
    with pytest.raises(ManifestError, match=r"releases/r\.yaml") as err:
        parse_manifest({**data, "rollout": rollout}, "releases/r.yaml")
    assert message in str(err.value)
    with pytest.raises(ValidationError):
        RolloutSpec.model_validate(rollout)
