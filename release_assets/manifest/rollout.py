"""The manifest's ``rollout:`` section: how a canary ramps, how long each step bakes, what it is judged on.

Validated with the rest of the manifest, so a ramp that could never finish (steps not rising to 100, a budget
nothing can breach) fails when the file loads, naming the field, not halfway through a live rollout.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Budget(_Strict):
    """How much worse than the champion, in the same window, the canary may be on one KPI.

    ``max_increase``: canary minus champion (a rate, or milliseconds for latency); ``max_ratio``: canary over
    champion; ``max``: an absolute bound on the canary's own value (intent distance has no champion side). When
    several are given, the KPI breaches only if it exceeds every one: on a loaded machine both variants' latency
    inflates together, so an absolute difference alone would hold harmless canaries.
    """

    max_increase: float | None = Field(default=None, ge=0)
    max_ratio: float | None = Field(default=None, ge=1)
    max: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _has_bound(self) -> Budget:
        if self.max_increase is None and self.max_ratio is None and self.max is None:
            raise ValueError("a budget needs `max_increase`, `max_ratio` or `max`")
        return self


class Budgets(_Strict):
    error_rate: Budget | None = None  # 5xx answers / answers
    schema_failure_rate: Budget | None = None  # answers with a step output that failed its schema / answers
    p99_ms: Budget | None = None  # from the request-duration histogram of the window
    escalation_rate: Budget | None = None
    abstain_rate: Budget | None = None
    intent_distance: Budget | None = None  # total variation distance of the intent shares, canary vs champion
    # Business KPIs, from the feedback users post for answers (POST /v1/{release}/feedback), each a share of the
    # feedback that reported it; judged from `min_feedback` such answers a side, held for more before that.
    unresolved_rate: Budget | None = None  # resolved: false / feedback with `resolved` (1 - the resolution rate)
    thumbs_down_rate: Budget | None = None  # thumbs down / feedback with `thumbs`
    false_escalation_rate: Budget | None = None  # escalation not_needed / feedback with `escalation`


class MetricTest(_Strict):
    """One KPI judged by a statistical test (rollout/judgement.py): it fails only when the canary is worse beyond
    chance, by more than ``tolerance`` (a rate difference; milliseconds of Hodges-Lehmann shift for latency; total
    variation distance for the intent distribution). A critical metric that fails fails the canary whatever the
    score."""

    critical: bool = False
    tolerance: float = Field(default=0.0, ge=0)
    weight: float = Field(default=1.0, gt=0)  # its share of the score among the metrics with data


class StatisticalMetrics(_Strict):
    """The KPIs the statistical judgement tests; ``null`` leaves one out. By default every KPI the servers count,
    latency and errors critical (what users feel first)."""

    latency: MetricTest | None = MetricTest(critical=True)  # Mann-Whitney U over the request-duration histogram
    error_rate: MetricTest | None = MetricTest(critical=True)  # two-proportion tests, per answer
    schema_failure_rate: MetricTest | None = MetricTest()
    escalation_rate: MetricTest | None = MetricTest()
    abstain_rate: MetricTest | None = MetricTest()
    intents: MetricTest | None = MetricTest()  # G-test of homogeneity of the intent counts
    # Business KPIs (two-proportion tests per feedback answer): off unless named, since most releases get none.
    unresolved_rate: MetricTest | None = None
    thumbs_down_rate: MetricTest | None = None
    false_escalation_rate: MetricTest | None = None


class Judgement(_Strict):
    """Per-metric statistical tests combined into a score out of 100, as Kayenta scores a canary: at least ``pass``
    passes the analysis, at least ``marginal`` is inconclusive (held, counted against ``inconclusive_limit``),
    below fails it. ``false_alarm_rate``: the chance a canary no worse than the champion is ever failed by a test,
    over every metric, step and tick of its rollout. ``budgets``: ``guardrail`` keeps judging the rollout's
    ``budgets`` beside the tests (a manifest that adds statistics never loosens a bound someone wrote down);
    ``off`` shows them without judging (the tests replace them)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    pass_score: float = Field(default=95, ge=0, le=100, alias="pass")
    marginal: float = Field(default=75, ge=0, le=100)
    false_alarm_rate: float = Field(default=0.05, gt=0, le=0.5)
    min_samples: int = Field(default=100, ge=10)  # answers a side under which a metric is NODATA, never judged
    metrics: StatisticalMetrics = Field(default_factory=StatisticalMetrics)
    budgets: Literal["guardrail", "off"] = "guardrail"

    @model_validator(mode="after")
    def _coherent(self) -> Judgement:
        if self.marginal > self.pass_score:
            raise ValueError(f"`marginal` ({self.marginal:g}) is above `pass` ({self.pass_score:g})")
        if not any(getattr(self.metrics, name) for name in StatisticalMetrics.model_fields):
            raise ValueError("`metrics` leaves every metric out: nothing would be judged")
        return self


class CircuitBreaker(_Strict):
    failure_rate: float = Field(gt=0, le=1)
    window: int = Field(default=20, ge=1, le=10_000)
    min_requests: int = Field(default=10, ge=1)
    cooldown_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _fits(self) -> CircuitBreaker:
        if self.min_requests > self.window:
            raise ValueError(f"min_requests ({self.min_requests}) is larger than the window ({self.window})")
        return self


class RolloutSpec(_Strict):
    # canary percentages, rising, ending at 100 (= promotion); at least one step below 100, where the canary is judged
    # against the champion in the same window
    steps: list[int] = Field(min_length=2)
    bake_s: float = Field(default=600, ge=0)  # minimum time at each step before it is judged
    min_requests: int = Field(default=50, ge=1)  # per step, for canary and champion: fewer is inconclusive
    # feedback answers a side, per business KPI, under which its budget holds the canary (neither pass nor fail)
    min_feedback: int = Field(default=20, ge=1)
    failures_to_rollback: int = Field(default=1, ge=1)  # failed analyses in a row before rolling back
    require_shadow: bool = False  # canary start needs a passed live shadow report of the version
    budgets: Budgets = Field(default_factory=Budgets)
    circuit_breaker: CircuitBreaker | None = None
    judgement: Judgement | None = None  # statistical tests per metric and a score; None: the budgets alone
    # Inconclusive analyses (a marginal score) allowed at one step, and the time a step may take to decide (from its
    # start, metrics unavailable included): past either the canary is paused for a person or rolled back, as
    # `on_undecided` says. None: a canary may hold as long as its data stays inconclusive.
    inconclusive_limit: int | None = Field(default=None, ge=1)
    progress_deadline_s: float | None = Field(default=None, gt=0)
    on_undecided: Literal["pause", "rollback"] = "pause"

    @field_validator("steps")
    @classmethod
    def _rising_to_100(cls, steps: list[int]) -> list[int]:
        if any(not 0 < s <= 100 for s in steps):
            raise ValueError(f"{steps}: every step is a percentage above 0 and at most 100")
        if any(b <= a for a, b in pairwise(steps)):
            raise ValueError(f"{steps}: steps must rise")
        if steps[-1] != 100:
            raise ValueError(f"{steps}: the last step must be 100 (reaching it promotes the canary)")
        return steps

    @model_validator(mode="after")
    def _deadline_after_bake(self) -> RolloutSpec:
        if self.progress_deadline_s is not None and self.progress_deadline_s <= self.bake_s:
            raise ValueError(
                f"`progress_deadline_s` ({self.progress_deadline_s:g}) must be longer than `bake_s` "
                f"({self.bake_s:g}): no step could decide before it"
            )
        return self

    @property
    def judged_steps(self) -> int:
        """Steps the canary is judged at against the champion: every one below 100."""
        return sum(1 for s in self.steps if s < 100)
