"""The statistical canary judgement: the sequential tests on known numbers, the score, and seeded synthetic traffic
(bench/support/canary_traffic.py) where the canary is truly worse by a small margin, truly equal, or starved.

The seeded runs are pure computation on counters (no server, no ledger) except where the ledger's record of a
pause or rollback is the point.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from bench.support.canary_traffic import Variant, windows
from release_assets.manifest.rollout import RolloutSpec
from release_assets.record.ledger import PromotionError, replay
from release_assets.rollout import judgement, sequential
from release_assets.rollout.analysis import analyse
from release_assets.rollout.canary import resume, start, tick
from release_assets.rollout.counters import Snapshot, VersionCounters
from release_assets_tests.rollout.test_canary import _later
from release_assets_tests.rollout.test_canary import setup as setup  # the fixture

JUDGED = {"steps": [10, 50, 100], "bake_s": 60, "min_requests": 20, "judgement": {"pass": 95, "marginal": 75}}
SPEC = RolloutSpec.model_validate(JUDGED)
BASE = Variant()


def test_mann_whitney_on_binned_samples_matches_the_tie_corrected_normal_approximation():
    # 3 + 2 answers in the same two bins: U counts the canary above the champion, a tie as a half.
    z, above = sequential.mann_whitney([1, 2], [2, 0])
    assert above == pytest.approx((1 * 1 + 2 * 2) / 6)  # bin 0 ties with both champion answers, bin 1 beats them
    n1, n2, ties = 3, 2, np.array([3, 2])
    variance = n1 * n2 / 12 * ((n1 + n2 + 1) - float(np.sum(ties**3 - ties)) / ((n1 + n2) * (n1 + n2 - 1)))
    assert z == pytest.approx((5 - 3) / math.sqrt(variance))
    assert sequential.mann_whitney([0, 5], [5, 0])[0] > 0 > sequential.mann_whitney([5, 0], [0, 5])[0]


def test_two_proportions_g_test_and_total_variation():
    assert sequential.two_proportions(30, 1000, 10, 1000) == pytest.approx(0.02 / math.sqrt(0.02 * 0.98 * 2 / 1000))
    assert sequential.two_proportions(0, 500, 0, 500) == 0  # no event either side: no evidence
    # scipy.stats.chi2_contingency([[10, 20, 30], [20, 20, 20]], lambda_="log-likelihood", correction=False)
    assert sequential.g_test({"a": 10, "b": 20, "c": 30}, {"a": 20, "b": 20, "c": 20}) == (
        pytest.approx(5.41153209),
        2,
    )
    assert sequential.g_test({"a": 5}, {"a": 9}) == (0.0, 0)
    assert sequential.total_variation({"a": 1}, {"b": 1}) == 1


def test_hodges_lehmann_reads_a_shift_of_one_bucket():
    bounds = [0.01, 0.02, 0.03, math.inf]
    assert sequential.hodges_lehmann_ms(bounds, np.array([0, 100, 0, 0]), np.array([100, 0, 0, 0])) == 10
    assert sequential.hodges_lehmann_ms(bounds, np.array([50, 50, 0, 0]), np.array([50, 50, 0, 0])) == pytest.approx(
        0, abs=1.3
    )


def test_the_mixture_ratio_keeps_its_false_alarm_rate_over_many_looks_where_a_fixed_test_does_not():
    # A running mean of standard normal noise looked at after every 50 observations, 40 looks, 2000 runs.
    rng = np.random.default_rng(7)
    n = np.arange(1, 41) * 50
    z = np.cumsum(rng.standard_normal((2000, 2000)), axis=1)[:, n - 1] / np.sqrt(n)
    log_ratio = np.vectorize(lambda zz, nn: sequential.mixture_log_ratio(zz * zz, 1, nn))(z, n)
    mixture = np.mean(np.any(log_ratio >= sequential.threshold(0.05), axis=1))
    fixed = np.mean(np.any(np.abs(z) >= 1.96, axis=1))
    assert mixture <= 0.05 < 0.2 < fixed


def _flagged(seed: int, canary: Variant, spec: RolloutSpec, looks: int = 12) -> int | None:
    """The first look (1-based, over the judged steps in turn) at which the judgement fails the canary."""
    look = 0
    for step, percent in enumerate(p for p in spec.steps if p < 100):
        for c, h in windows(seed * 100 + step, canary, BASE, percent, 400, looks):
            look += 1
            if judgement.judge(c, h, spec).verdict == "fail":
                return look
    return None


def test_a_canary_truly_worse_by_a_small_margin_is_detected():
    # 1% errors against 2.5% and a 15% slower median: small margins, both critical metrics.
    for worse in (Variant(error_rate=0.025), BASE.slower(1.15)):
        detected = [_flagged(seed, worse, SPEC, looks=24) for seed in range(10)]
        assert all(d is not None for d in detected), detected


def test_a_canary_truly_equal_is_not_flagged_beyond_the_manifests_false_alarm_rate_in_100_seeded_runs():
    flagged = [seed for seed in range(100) if _flagged(seed, BASE, SPEC) is not None]
    assert len(flagged) / 100 <= SPEC.judgement.false_alarm_rate, flagged


def test_too_little_data_is_nodata_never_pass_or_fail():
    few = next(windows(1, BASE, BASE, 1, 200, 1))  # about 2 canary answers
    j = judgement.judge(*few, SPEC)
    assert (j.verdict, j.score) == ("nodata", None)
    assert all(m.outcome == "nodata" and "NODATA" in m.reason for m in j.metrics)
    a = analyse(*few, SPEC.model_copy(update={"min_requests": 1}), 0, 3600)
    assert a.decision == "nodata" and a.judgement["verdict"] == "nodata"


def test_the_score_fails_on_a_critical_metric_and_is_marginal_on_one_of_six_others():
    c, h = list(windows(3, Variant(error_rate=0.05), BASE, 50, 2000, 3))[-1]
    critical = judgement.judge(c, h, SPEC)
    assert (critical.verdict, critical.score) == ("fail", 0)
    assert [m.name for m in critical.failed] == ["error_rate"]
    c, h = list(windows(3, Variant(abstain_rate=0.10), BASE, 50, 2000, 3))[-1]
    marginal = judgement.judge(c, h, SPEC)
    assert (marginal.verdict, marginal.score, [m.name for m in marginal.failed]) == (
        "marginal",
        pytest.approx(100 * 5 / 6, abs=0.01),
        ["abstain_rate"],
    )
    tolerated = SPEC.model_copy(
        update={"judgement": SPEC.judgement.model_copy(update={"metrics": _metrics(abstain_rate={"tolerance": 0.1})})}
    )
    assert judgement.judge(c, h, tolerated).verdict == "pass"  # significant, but within its tolerance


def _metrics(**overrides):
    return RolloutSpec.model_validate({**JUDGED, "judgement": {"metrics": overrides}}).judgement.metrics


def test_a_statistical_failure_breaches_while_baking_and_budgets_can_be_switched_off():
    c, h = list(windows(3, Variant(error_rate=0.05), BASE, 50, 2000, 3))[-1]
    assert analyse(c, h, SPEC, 0, 5).decision == "breach"  # anytime-valid: no need to wait for the bake
    budgets = {"error_rate": {"max_increase": 0.0}}  # any increase breaches
    noisy = list(windows(4, BASE, BASE, 50, 2000, 1))[-1]
    guarded = RolloutSpec.model_validate({**JUDGED, "budgets": budgets})
    off = RolloutSpec.model_validate({**JUDGED, "budgets": budgets, "judgement": {"budgets": "off"}})
    if noisy[0].errors / noisy[0].requests > noisy[1].errors / noisy[1].requests:
        assert analyse(*noisy, guarded, 0, 3600).decision == "breach"
    assert analyse(*noisy, off, 0, 3600).decision == "advance"


@pytest.mark.parametrize(
    ("judgement_section", "extra", "message"),
    [
        ({"pass": 70, "marginal": 80}, {}, "`marginal` (80) is above `pass` (70)"),
        (
            {
                "metrics": {k: None for k in ("latency", "error_rate", "schema_failure_rate")}
                | {k: None for k in ("escalation_rate", "abstain_rate", "intents")}
            },
            {},
            "leaves every metric out",
        ),
        ({"metrics": {"latncy": {}}}, {}, "latncy"),
        ({"false_alarm_rate": 0}, {}, "false_alarm_rate"),
        ({}, {"progress_deadline_s": 30}, "`progress_deadline_s` (30) must be longer than `bake_s` (60)"),
        ({}, {"on_undecided": "wait"}, "on_undecided"),
    ],
)
def test_a_judgement_section_that_could_not_work_fails_naming_the_field(judgement_section, extra, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RolloutSpec.model_validate({**JUDGED, "judgement": judgement_section, **extra})


class Counted:
    """A metrics source serving given cumulative counters for the champion and the canary."""

    def __init__(self, champion: str, canary: str) -> None:
        self.versions = (champion, canary)
        self.now: dict[str, VersionCounters] = {}

    def feed(self, canary: VersionCounters, champion: VersionCounters) -> None:
        self.now = {self.versions[0]: champion, self.versions[1]: canary}

    def snapshot(self, release: str) -> Snapshot:
        return Snapshot(versions=dict(self.now), sources=["synthetic"])


def test_a_starved_canary_is_nodata_then_paused_at_its_deadline_and_resumed_by_a_person(setup):
    r, _registry, v1, v2 = setup
    r.spec = RolloutSpec.model_validate({**JUDGED, "min_requests": 1, "progress_deadline_s": 600})
    source = Counted(v1, v2)
    start(r, v2, "bob", "quiet hours", source=source)
    starved = windows(5, BASE, BASE, 1, 150, 3)  # about 1.5 canary answers a look
    source.feed(*next(starved))
    assert tick(r, source, _later(r, 120)).action == "nodata"
    source.feed(*next(starved))
    paused = tick(r, source, _later(r, 601))
    assert paused.action == "paused"
    [e] = [e for e in r.store.events("helpdesk") if e["action"] == "canary_paused"]
    assert "progress deadline" in e["reason"] and "NODATA" in e["reason"]
    assert replay(r.store.events("helpdesk")).canary.percent == 10  # traffic stays where it is for the person
    assert tick(r, source, _later(r, 700)).action == "paused"  # the monitor waits for a person
    with pytest.raises(PromotionError, match="who and why"):
        resume(r, "", "")
    resume(r, "carol", "traffic is back")
    c = replay(r.store.events("helpdesk")).canary
    assert c.paused is None and c.percent == 10
    source.feed(*next(starved))
    assert tick(r, source, _later(r, 120)).action == "nodata"  # the deadline counts from the resume


def test_a_starved_canary_rolls_back_at_its_deadline_when_the_manifest_says_so(setup):
    r, _registry, v1, v2 = setup
    r.spec = RolloutSpec.model_validate(
        {**JUDGED, "min_requests": 1, "progress_deadline_s": 600, "on_undecided": "rollback"}
    )
    source = Counted(v1, v2)
    start(r, v2, "bob", "quiet hours", source=source)
    source.feed(*next(windows(5, BASE, BASE, 1, 150, 1)))
    assert tick(r, source, _later(r, 601)).action == "rolled_back"
    [e] = [e for e in r.store.events("helpdesk") if e["action"] == "rolled_back"]
    assert e["undecided"] is True and e["scope"] == "canary" and "progress deadline" in e["reason"]
    assert replay(r.store.events("helpdesk")).champion == v1


def test_inconclusive_analyses_are_counted_in_the_ledger_up_to_the_limit(setup):
    r, _registry, v1, v2 = setup
    r.spec = RolloutSpec.model_validate({**JUDGED, "inconclusive_limit": 2})
    source = Counted(v1, v2)
    start(r, v2, "bob", "more abstentions", source=source)
    source.feed(*list(windows(3, Variant(abstain_rate=0.10), BASE, 50, 2000, 3))[-1])
    first = tick(r, source, _later(r, 61))
    assert first.action == "inconclusive" and first.canary.inconclusive == 1
    second = tick(r, source, _later(r, 61))
    assert second.action == "paused" and "inconclusive limit: 2" in second.note
    actions = [e["action"] for e in r.store.events("helpdesk")][-3:]
    assert actions == ["canary_inconclusive", "canary_inconclusive", "canary_paused"]
