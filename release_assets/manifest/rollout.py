"""The manifest's ``rollout:`` section: how a canary ramps, how long each step bakes, what it is judged on.

Validated with the rest of the manifest, so a ramp that could never finish (steps not rising to 100, a budget
nothing can breach) fails when the file loads, naming the field, not halfway through a live rollout.
"""

from __future__ import annotations

from itertools import pairwise

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
    failures_to_rollback: int = Field(default=1, ge=1)  # failed analyses in a row before rolling back
    require_shadow: bool = False  # canary start needs a passed live shadow report of the version
    budgets: Budgets = Field(default_factory=Budgets)
    circuit_breaker: CircuitBreaker | None = None

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
