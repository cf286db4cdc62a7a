"""One canary analysis: the canary's live KPIs against the champion's in the same window, and what to do next.

Pure: counters in, a decision out. The order of the rules is the policy:

1. the canary's circuit breaker is open: a breach, whatever the bake time (users are already being failed);
2. the statistical judgement (``rollout.judgement``, rollout/judgement.py) fails: a breach, whatever the bake time
   (its tests keep their false-alarm rate at every look, so waiting would only expose more users);
3. the step has not baked yet: wait;
4. too few requests on either side: hold, inconclusive. Never advance or promote on no data (argo-rollouts#1905,
   flagger#883 are both bugs where an empty query read as success);
5. any KPI over its budget: a breach (the controller rolls back after ``failures_to_rollback`` in a row); with a
   judgement whose ``budgets`` is ``off`` the budgets are shown, not judged;
6. a business KPI (feedback) has a budget and fewer than ``min_feedback`` answers a side: hold, never pass or fail;
7. the judgement has no metric with enough data (``nodata``) or a marginal score (``inconclusive``): hold; the
   controller counts inconclusive analyses against ``inconclusive_limit``;
8. live inputs drifted from the release's reference data: hold (both variants see the same inputs, so this is
   not the canary's fault, but a ramp judged on unusual traffic proves little);
9. otherwise advance to the next step, and reaching 100% promotes.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypedDict

from release_assets.manifest.rollout import Budget, RolloutSpec
from release_assets.rollout import judgement as statistical
from release_assets.rollout.counters import FEEDBACK_KPIS, VersionCounters, feedback_answers, quantile_ms
from release_assets.rollout.sequential import total_variation

Decision = Literal["bake", "hold", "nodata", "inconclusive", "breach", "advance", "promote"]
KPIS = (
    "error_rate",
    "schema_failure_rate",
    "p99_ms",
    "escalation_rate",
    "abstain_rate",
    "intent_distance",
    *FEEDBACK_KPIS,
)


@dataclass(frozen=True)
class Kpi:
    name: str
    canary: float | None
    champion: float | None
    budget: str
    breached: bool | None  # None: not judged (no budget, or no value)


@dataclass(frozen=True)
class Analysis:
    decision: Decision
    reason: str
    step: int
    percent: int
    next_percent: int | None
    canary_requests: float
    champion_requests: float
    elapsed_s: float
    kpis: list[Kpi] = field(default_factory=list)
    # Requests of the release shed by admission control in the window (503/429 before routing): load, not any
    # version's errors; reported so a thin window is explained, never judged.
    shed_requests: float = 0.0
    judgement: dict[str, Any] | None = None  # the statistical judgement (StatisticalJudgement.as_dict), if any

    @property
    def breached(self) -> list[Kpi]:
        return [k for k in self.kpis if k.breached]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Head(TypedDict):
    """The fields every decision of one analysis shares."""

    step: int
    percent: int
    next_percent: int | None
    canary_requests: float
    champion_requests: float
    elapsed_s: float


def _rate(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def intent_distance(canary: dict[str, float], champion: dict[str, float]) -> float | None:
    """Total variation distance between the two intent distributions: 0 identical, 1 disjoint."""
    return total_variation(canary, champion)


# The 99th percentile of fewer answers is their slowest one or two: a single stall (a thread starting, a collection
# pause, a first load) would decide the verdict. Below this many on either side, p99 is shown but not judged.
MIN_LATENCY_SAMPLES = 100


def kpi_values(c: VersionCounters) -> dict[str, float | None]:
    return {
        **{kpi: _rate(getattr(c, bad), feedback_answers(c, kpi)) for kpi, (bad, _) in FEEDBACK_KPIS.items()},
        "error_rate": _rate(c.errors, c.requests),
        "schema_failure_rate": _rate(c.schema_failures, c.requests),
        "p99_ms": quantile_ms(c.latency_buckets, 0.99),
        "escalation_rate": _rate(c.escalations, c.requests),
        "abstain_rate": _rate(c.abstentions, c.requests),
    }


def budget_text(b: Budget) -> str:
    parts = [f"≤ champion + {b.max_increase:g}" if b.max_increase is not None else ""]
    parts += [f"≤ champion × {b.max_ratio:g}" if b.max_ratio is not None else ""]
    parts += [f"≤ {b.max:g}" if b.max is not None else ""]
    return " and ".join(p for p in parts if p)


def over_budget(canary: float, champion: float, b: Budget) -> bool:
    """Breached only when every bound the budget gives is exceeded (see manifest.rollout.Budget)."""
    exceeded = []
    if b.max is not None:
        exceeded.append(canary > b.max)
    if b.max_increase is not None:
        exceeded.append(canary - champion > b.max_increase)
    if b.max_ratio is not None:
        exceeded.append(canary > champion * b.max_ratio if champion > 0 else canary > 0)
    return all(exceeded)


def judge(canary: VersionCounters, champion: VersionCounters, spec: RolloutSpec) -> list[Kpi]:
    ours, theirs = kpi_values(canary), kpi_values(champion)
    ours["intent_distance"], theirs["intent_distance"] = intent_distance(canary.intents, champion.intents), 0.0
    # Answers a side: the requests that reached the model, bounded by the latencies recorded (a server may also time
    # requests refused as bad input, which are not answers).
    samples = min(min(x.requests, max(x.latency_buckets.values(), default=0.0)) for x in (canary, champion))
    out = []
    for name in KPIS:
        budget: Budget | None = getattr(spec.budgets, name)
        c, h = ours[name], theirs[name]
        if name == "p99_ms" and budget is not None and samples < MIN_LATENCY_SAMPLES:
            text = f"{budget_text(budget)} (judged from {MIN_LATENCY_SAMPLES} answers a side; {samples:g} here)"
            out.append(Kpi(name, c, h, text, None))
            continue
        feedback = min(feedback_answers(x, name) for x in (canary, champion)) if name in FEEDBACK_KPIS else None
        if budget is not None and feedback is not None and feedback < spec.min_feedback:
            text = f"{budget_text(budget)} (judged from {spec.min_feedback} feedback answers a side; {feedback:g} here)"
            out.append(Kpi(name, c, h, text, None))
            continue
        if budget is None or c is None or h is None:
            out.append(Kpi(name, c, h, budget_text(budget) if budget else "no budget", None))
            continue
        out.append(Kpi(name, round(c, 6), round(h, 6), budget_text(budget), over_budget(c, h, budget)))
    return out


def analyse(
    canary: VersionCounters,
    champion: VersionCounters,
    spec: RolloutSpec,
    step: int,
    elapsed_s: float,
    drift: dict[str, Any] | None = None,
    shed: float = 0.0,
) -> Analysis:
    """The decision for a canary at ``spec.steps[step]`` whose step began ``elapsed_s`` ago, on window counters;
    ``shed``: the release's requests shed by admission control in the window (reported, never an error)."""
    percent = spec.steps[step]
    nxt = spec.steps[step + 1] if step + 1 < len(spec.steps) else None
    head: _Head = {
        "step": step,
        "percent": percent,
        "next_percent": nxt,
        "canary_requests": canary.requests,
        "champion_requests": champion.requests,
        "elapsed_s": round(elapsed_s, 3),
    }
    kpis = judge(canary, champion, spec)
    tests = statistical.judge(canary, champion, spec) if spec.judgement is not None else None
    decided = functools.partial(Analysis, shed_requests=shed, judgement=tests.as_dict() if tests else None)
    if canary.circuit_open:
        return decided("breach", "the canary's circuit breaker is open in serve", kpis=kpis, **head)
    if tests is not None and tests.verdict == "fail":
        return decided("breach", f"statistical judgement failed: {tests.reason}", kpis=kpis, **head)
    if elapsed_s < spec.bake_s:
        return decided("bake", f"baking: {elapsed_s:.0f} of {spec.bake_s:g} s at {percent}%", kpis=kpis, **head)
    short = [
        f"{side} {n:g} of {spec.min_requests}"
        for side, n in (("canary", canary.requests), ("champion", champion.requests))
        if n < spec.min_requests
    ]
    if short:
        why = f"inconclusive, too little traffic: {', '.join(short)} requests"
        if shed:
            why += f" ({shed:g} more shed by admission control, counted as shed load, not answers)"
        return decided("hold", why, kpis=kpis, **head)
    breached = (
        [k for k in kpis if k.breached] if spec.judgement is None or spec.judgement.budgets == "guardrail" else []
    )
    if breached:
        listed = "; ".join(f"{k.name} {k.canary:g} vs champion {k.champion:g} ({k.budget})" for k in breached)
        return decided("breach", f"over budget: {listed}", kpis=kpis, **head)
    judged = spec.judgement is None or spec.judgement.budgets == "guardrail"
    starved = [name for name in FEEDBACK_KPIS if judged and _short_of_feedback(canary, champion, spec, name)]
    if starved:
        listed = ", ".join(starved)
        why = f"inconclusive, too little feedback for {listed} (judged from {spec.min_feedback} answers a side)"
        return decided("hold", why, kpis=kpis, **head)
    if tests is not None and tests.verdict in ("nodata", "marginal"):
        decision: Decision = "nodata" if tests.verdict == "nodata" else "inconclusive"
        return decided(decision, f"statistical judgement {tests.reason}", kpis=kpis, **head)
    if drift is not None and drift.get("verdict") == "drifted":
        return decided(
            "hold", f"live inputs drifted from the reference data: {drift.get('reason', '')}", kpis=kpis, **head
        )
    if nxt is None or nxt == 100:
        return decided("promote", f"{_met(spec, tests)} at {percent}%: promote to champion", kpis=kpis, **head)
    return decided("advance", f"{_met(spec, tests)} at {percent}%: advance to {nxt}%", kpis=kpis, **head)


def _short_of_feedback(canary: VersionCounters, champion: VersionCounters, spec: RolloutSpec, kpi: str) -> bool:
    """A business budget without enough feedback either side: never passed, never failed, so the canary holds."""
    if getattr(spec.budgets, kpi) is None:
        return False
    return min(feedback_answers(canary, kpi), feedback_answers(champion, kpi)) < spec.min_feedback


def _met(spec: RolloutSpec, tests: statistical.StatisticalJudgement | None) -> str:
    if tests is None:
        return "every budget met"
    judged = f"statistical judgement {tests.reason}"
    return judged if spec.judgement is not None and spec.judgement.budgets == "off" else f"every budget met, {judged}"
