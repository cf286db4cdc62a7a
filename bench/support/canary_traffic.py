"""Seeded synthetic traffic for judging canaries without servers: the counters two variants would export.

Each monitor interval, ``requests`` answers are split between canary and champion by the step's percentage; every
answer fails, escalates, abstains and fails its schema with its variant's probabilities, takes a log-normal
latency counted into serve's histogram buckets, and gets an intent from its variant's distribution. Counts are
drawn in bulk (binomial, multinomial), so a hundred seeded rollouts of dozens of looks are pure, fast computation.
The tests of the statistical judgement and ``bench/canary_judgement.py`` use the same traffic.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from release_assets.rollout.counters import SCALARS, VersionCounters

# serve's request-duration buckets (release_assets/serving/metrics.py), in seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, math.inf)
INTENTS = ("refund", "order_status", "cancel_order", "other")


@dataclass(frozen=True)
class Variant:
    """How one version behaves per answer."""

    error_rate: float = 0.01
    schema_failure_rate: float = 0.005
    escalation_rate: float = 0.10
    abstain_rate: float = 0.05
    latency_median_ms: float = 20.0
    latency_sigma: float = 0.6  # of the log of the latency
    intent_shares: tuple[float, ...] = field(default=(0.4, 0.3, 0.2, 0.1))

    def slower(self, factor: float) -> Variant:
        return replace(self, latency_median_ms=self.latency_median_ms * factor)

    def bucket_shares(self) -> np.ndarray:
        """The share of answers in each latency bucket alone."""
        mu = math.log(self.latency_median_ms / 1000)
        below = [
            0.5 * math.erfc(-(math.log(b) - mu) / (self.latency_sigma * math.sqrt(2))) if math.isfinite(b) else 1.0
            for b in LATENCY_BUCKETS
        ]
        return np.diff(below, prepend=0.0)


def interval(rng: np.random.Generator, v: Variant, n: int) -> VersionCounters:
    """One interval's counts for ``n`` answers of variant ``v``."""
    rates = (v.error_rate, v.schema_failure_rate, v.escalation_rate, v.abstain_rate)
    events = [float(rng.binomial(n, p)) for p in rates]
    per_bucket = rng.multinomial(n, v.bucket_shares())
    intents = rng.multinomial(n, v.intent_shares)
    return VersionCounters(
        float(n),
        *events,
        intents={k: float(c) for k, c in zip(INTENTS, intents, strict=True)},
        latency_buckets=dict(zip(LATENCY_BUCKETS, np.cumsum(per_bucket).astype(float).tolist(), strict=True)),
        circuit_open=False,
    )


def plus(a: VersionCounters, b: VersionCounters) -> VersionCounters:
    return replace(
        a,
        **{k: getattr(a, k) + getattr(b, k) for k in SCALARS},
        intents={k: a.intents.get(k, 0.0) + b.intents.get(k, 0.0) for k in a.intents.keys() | b.intents.keys()},
        latency_buckets={k: a.latency_buckets[k] + b.latency_buckets[k] for k in a.latency_buckets},
    )


def windows(
    seed: int, canary: Variant, champion: Variant, percent: int, requests: int, looks: int
) -> Iterator[tuple[VersionCounters, VersionCounters]]:
    """The step's window (counts since it began) at each of ``looks`` intervals of ``requests`` answers, the
    canary taking ``percent`` of them (binomially, as hashing users would)."""
    rng = np.random.default_rng(seed)
    c = h = None
    for _ in range(looks):
        to_canary = int(rng.binomial(requests, percent / 100))
        ci, hi = interval(rng, canary, to_canary), interval(rng, champion, requests - to_canary)
        c, h = (ci, hi) if c is None or h is None else (plus(c, ci), plus(h, hi))
        yield c, h
