"""The statistical judgement of a canary step: a test per KPI that knows its sample size, and a score.

Each metric the manifest's ``rollout.judgement.metrics`` names is compared canary against champion on the window's
counts, with a sequential test (rollout/sequential.py) so that looking every tick does not inflate false alarms:

- ``latency``: Mann-Whitney U over the request-duration histogram (every answer a sample, tied within its bucket),
  the effect its Hodges-Lehmann shift in milliseconds;
- ``error_rate``, ``schema_failure_rate``, ``escalation_rate``, ``abstain_rate``: a two-proportion test per answer,
  the effect the difference of the rates;
- ``unresolved_rate``, ``thumbs_down_rate``, ``false_escalation_rate`` (business KPIs, off unless named): the same
  two-proportion test per feedback answer that reported the outcome, NODATA below ``min_samples`` of them a side;
- ``intents``: a G-test of homogeneity of the intent counts, the effect their total variation distance.

A metric fails only when its test rejects "no worse than the champion" in the harmful direction and its effect is
above the metric's tolerance (significant and large enough, as Kayenta checks an effect size beside its test);
fewer than ``min_samples`` answers a side is NODATA, neither pass nor fail. The canary's false-alarm rate is split
evenly over the tests it can ever run (metrics × judged steps), each test's ratio crossing ``1/α`` at most α of the
time however often it is read, so the whole rollout of a canary as good as the champion fails with probability at
most ``false_alarm_rate``.

The score is Kayenta's: the weighted share of the metrics with data that passed, 0 if a critical one failed; every
metric NODATA is NODATA. At least ``pass`` passes, at least ``marginal`` is marginal (inconclusive), below fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from release_assets.manifest.rollout import Judgement, MetricTest, RolloutSpec, StatisticalMetrics
from release_assets.rollout import sequential
from release_assets.rollout.counters import FEEDBACK_KPIS, VersionCounters, feedback_answers

Outcome = Literal["pass", "fail", "nodata"]
Verdict = Literal["pass", "marginal", "fail", "nodata"]

# Rate metrics: the counter holding the events, per answer.
_RATES = {
    "error_rate": "errors",
    "schema_failure_rate": "schema_failures",
    "escalation_rate": "escalations",
    "abstain_rate": "abstentions",
}


@dataclass(frozen=True)
class MetricResult:
    name: str
    outcome: Outcome
    critical: bool
    samples: tuple[float, float]  # (canary, champion) answers the test saw
    effect: float | None  # canary minus champion in the metric's unit (None: NODATA)
    tolerance: float
    log_ratio: float | None  # the test's log mixture likelihood ratio; it rejects at `log_threshold`
    log_threshold: float
    reason: str


@dataclass(frozen=True)
class StatisticalJudgement:
    verdict: Verdict
    score: float | None  # out of 100; None when every metric is NODATA
    reason: str
    alpha_per_test: float
    metrics: list[MetricResult] = field(default_factory=list)

    @property
    def failed(self) -> list[MetricResult]:
        return [m for m in self.metrics if m.outcome == "fail"]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def alpha_per_test(judgement: Judgement, judged_steps: int) -> float:
    """The false-alarm rate each test may spend: the rollout's, split over every metric at every judged step."""
    tested = sum(1 for name in StatisticalMetrics.model_fields if getattr(judgement.metrics, name) is not None)
    return judgement.false_alarm_rate / (tested * max(judged_steps, 1))


def _result(
    name: str,
    test: MetricTest,
    samples: tuple[float, float],
    effect: float,
    z_or_statistic: float,
    df: int,
    harmful: bool,
    log_threshold: float,
    unit: str,
) -> MetricResult:
    n = sequential.effective_size(*samples)
    statistic = z_or_statistic**2 if df == 1 else z_or_statistic
    log_ratio = sequential.mixture_log_ratio(statistic, df, n) if df > 0 else 0.0
    significant = harmful and log_ratio >= log_threshold
    failed = significant and effect > test.tolerance
    seen = f"{effect:+.4g}{unit} on {samples[0]:g} vs {samples[1]:g} answers"
    if failed:
        why = f"worse beyond chance: {seen}, over the tolerance {test.tolerance:g}{unit}"
    elif significant:
        why = f"worse beyond chance but within the tolerance {test.tolerance:g}{unit}: {seen}"
    else:
        why = f"not worse beyond chance: {seen}"
    return MetricResult(
        name,
        "fail" if failed else "pass",
        test.critical,
        samples,
        round(effect, 6),
        test.tolerance,
        round(log_ratio, 4),
        round(log_threshold, 4),
        f"{why} (log ratio {log_ratio:.2f}, rejects at {log_threshold:.2f})",
    )


def _nodata(name: str, test: MetricTest, samples: tuple[float, float], need: int, log_threshold: float) -> MetricResult:
    why = f"NODATA: {samples[0]:g} canary and {samples[1]:g} champion answers (judged from {need} a side)"
    return MetricResult(name, "nodata", test.critical, samples, None, test.tolerance, None, log_threshold, why)


def _latency(canary: VersionCounters, champion: VersionCounters, test: MetricTest, need: int, log_t: float):
    bounds_a, a = sequential.bucket_counts(canary.latency_buckets)
    bounds_b, b = sequential.bucket_counts(champion.latency_buckets)
    samples = (float(a.sum()), float(b.sum()))
    if min(samples) < need:
        return _nodata("latency", test, samples, need, log_t)
    if bounds_a != bounds_b:
        raise ValueError(f"latency: the canary's buckets {bounds_a} differ from the champion's {bounds_b}")
    z, _ = sequential.mann_whitney(a, b)
    shift = sequential.hodges_lehmann_ms(bounds_a, a, b)
    return _result("latency", test, samples, shift, z, 1, z > 0, log_t, " ms")


def _rate(name: str, canary: VersionCounters, champion: VersionCounters, test: MetricTest, need: int, log_t: float):
    if name in FEEDBACK_KPIS:  # a business KPI: a share of the feedback answers that reported its outcome
        samples = (feedback_answers(canary, name), feedback_answers(champion, name))
        counter = FEEDBACK_KPIS[name][0]
    else:
        samples, counter = (canary.requests, champion.requests), _RATES[name]
    if min(samples) < need:
        return _nodata(name, test, samples, need, log_t)
    k1, k2 = getattr(canary, counter), getattr(champion, counter)
    z = sequential.two_proportions(k1, samples[0], k2, samples[1])
    return _result(name, test, samples, k1 / samples[0] - k2 / samples[1], z, 1, z > 0, log_t, "")


def _intents(canary: VersionCounters, champion: VersionCounters, test: MetricTest, need: int, log_t: float):
    samples = (sum(canary.intents.values()), sum(champion.intents.values()))
    if min(samples) < need:
        return _nodata("intents", test, samples, need, log_t)
    g, df = sequential.g_test(canary.intents, champion.intents)
    distance = sequential.total_variation(canary.intents, champion.intents) or 0.0
    return _result("intents", test, samples, distance, g, df, df > 0, log_t, "")


def judge(canary: VersionCounters, champion: VersionCounters, spec: RolloutSpec) -> StatisticalJudgement:
    """The canary's window against the champion's, per metric and as a score (see the module's docstring)."""
    if spec.judgement is None:
        raise ValueError("the rollout has no `judgement:` section: nothing says how to judge statistically")
    j = spec.judgement
    alpha = alpha_per_test(j, spec.judged_steps)
    log_t = sequential.threshold(alpha)
    results = []
    for name in StatisticalMetrics.model_fields:
        test: MetricTest | None = getattr(j.metrics, name)
        if test is None:
            continue
        if name == "latency":
            results.append(_latency(canary, champion, test, j.min_samples, log_t))
        elif name == "intents":
            results.append(_intents(canary, champion, test, j.min_samples, log_t))
        else:
            results.append(_rate(name, canary, champion, test, j.min_samples, log_t))
    return _scored(results, j, alpha)


def _scored(results: list[MetricResult], j: Judgement, alpha: float) -> StatisticalJudgement:
    with_data = [m for m in results if m.outcome != "nodata"]
    if not with_data:
        return StatisticalJudgement("nodata", None, "NODATA: no metric has enough answers yet", alpha, results)
    weights = {
        name: getattr(j.metrics, name).weight for name in StatisticalMetrics.model_fields if getattr(j.metrics, name)
    }
    failed = [m for m in with_data if m.outcome == "fail"]
    critical = [m for m in failed if m.critical]
    passed = sum(weights[m.name] for m in with_data if m.outcome == "pass")
    score = 0.0 if critical else round(100 * passed / sum(weights[m.name] for m in with_data), 2)
    listed = "; ".join(f"{m.name} {m.reason}" for m in failed)
    if score >= j.pass_score:
        verdict: Verdict = "pass"
        why = f"score {score:g} ≥ pass {j.pass_score:g}"
    elif score >= j.marginal:
        verdict = "marginal"
        why = f"score {score:g}: marginal ({j.marginal:g} to {j.pass_score:g}), inconclusive"
    else:
        verdict = "fail"
        why = f"score {score:g} < marginal {j.marginal:g}" + (" (a critical metric failed)" if critical else "")
    nodata = [m.name for m in results if m.outcome == "nodata"]
    if listed:
        why += f": {listed}"
    if nodata:
        why += f" [NODATA: {', '.join(nodata)}]"
    return StatisticalJudgement(verdict, score, why, alpha, results)
