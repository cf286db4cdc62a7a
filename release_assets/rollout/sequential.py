"""Two-sample tests that stay honest when the same canary is looked at every tick, with their sample sizes.

The monitor judges a canary at every tick of its step, on the counts since the step began. A fixed-sample test at
level α looked at that often raises a false alarm far more often than α (ten looks at a two-sided 5% already flag
about a fifth of healthy canaries). Each test here is therefore a mixture sequential probability ratio test
(mSPRT: Robbins 1970; Johari, Pekelis and Walsh, "Always valid inference", 2017): the likelihood ratio of "the two
variants differ" against "they do not", averaged over a normal prior on the standardised effect, taken on the
large-sample normal (or chi-square) law of the classical statistic. Under the null that ratio is a nonnegative
martingale, so by Ville's inequality it ever reaches ``1/α`` with probability at most α, however often and
whenever it is looked at.

Why this rather than an alpha-spending boundary (O'Brien-Fleming, Pocock): spending needs the number of looks, or
the information fraction at each, and a maximum sample size fixed in advance. The monitor ticks on a daemon's
schedule, is paused, restarted and resumed, and a step's traffic is whatever users send; the mixture ratio needs
none of that (no look counter to keep in the ledger, no schedule to agree with). The price is power: a fixed-sample
test would reach the same verdict on roughly half the traffic, if it were looked at only once.

Pure arithmetic on counts (histogram buckets, event counts, category counts): numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

# The prior's standard deviation on the standardised effect (the difference over one observation's standard
# deviation). The ratio grows fastest for effects near it: 0.1 is, for example, one percentage point more errors on
# a 1% error rate, or a latency shift that makes the canary the slower of a random pair 53% of the time. Johari et
# al. advise setting it near the effects one wants to catch; far smaller ones take proportionally longer to find.
MIXTURE_SD = 0.1


def effective_size(n1: float, n2: float) -> float:
    """The one-sample size equivalent to two samples of ``n1`` and ``n2``: the variance of a difference of means
    is ``σ² (1/n1 + 1/n2) = σ² / effective_size``."""
    return n1 * n2 / (n1 + n2) if n1 > 0 and n2 > 0 else 0.0


def mixture_log_ratio(statistic: float, df: int, n: float, sd: float = MIXTURE_SD) -> float:
    """log of the mixture likelihood ratio for a statistic that is chi-square with ``df`` degrees of freedom under
    the null (``z²`` for a normal one) on an effective sample of ``n``.

    With the estimate normal around the standardised effect θ, variance ``1/n`` per dimension, and θ ~ N(0, sd² I):
    ``Λ = (1 + n sd²)^(-df/2) exp(n sd² / (1 + n sd²) · statistic / 2)``.
    """
    if n <= 0:
        return 0.0
    grow = n * sd * sd
    return -0.5 * df * math.log1p(grow) + grow / (1 + grow) * statistic / 2


def threshold(alpha: float) -> float:
    """The log ratio at which the test rejects: ``log(1/α)`` (Ville's inequality)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: {alpha!r} is not a probability in (0, 1)")
    return math.log(1 / alpha)


def two_proportions(k1: float, n1: float, k2: float, n2: float) -> float:
    """z of the pooled two-proportion test of ``k1/n1`` against ``k2/n2``: positive when the first is higher.
    No event on either side (or every answer one) is no evidence of a difference: 0."""
    if n1 <= 0 or n2 <= 0:
        raise ValueError(f"two proportions need answers on both sides, got {n1:g} and {n2:g}")
    pooled = (k1 + k2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    return 0.0 if variance <= 0 else (k1 / n1 - k2 / n2) / math.sqrt(variance)


def bucket_counts(cumulative: Mapping[float, float]) -> tuple[list[float], np.ndarray]:
    """Cumulative histogram buckets (upper bound -> count, as Prometheus exports them) as sorted bounds and the
    count in each bucket alone (never negative: a bucket below the one above is read as equal, like PromQL)."""
    bounds = sorted(cumulative)
    running = np.maximum.accumulate(np.array([cumulative[b] for b in bounds], dtype=float)) if bounds else np.zeros(0)
    return bounds, np.diff(running, prepend=0.0)


def mann_whitney(first: Sequence[float] | np.ndarray, second: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """``(z, P(first > second) + P(tie) / 2)`` of the Mann-Whitney U test on two samples given as counts per
    ordered bin (a histogram's buckets on the same bounds), with the variance corrected for ties: every answer in
    a bucket ties with every other there, which only makes the test more careful. ``z`` is positive when the first
    sample tends to be larger."""
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"two histograms on different bins: {a.shape} and {b.shape}")
    n1, n2 = a.sum(), b.sum()
    if n1 <= 0 or n2 <= 0:
        raise ValueError(f"Mann-Whitney needs answers on both sides, got {n1:g} and {n2:g}")
    below = np.cumsum(b) - b  # second's count in lower bins
    u = float(np.sum(a * (below + b / 2)))
    n = n1 + n2
    ties = a + b
    variance = n1 * n2 / 12 * ((n + 1) - float(np.sum(ties**3 - ties)) / (n * (n - 1)))
    z = 0.0 if variance <= 0 else (u - n1 * n2 / 2) / math.sqrt(variance)
    return z, u / (n1 * n2)


# Points each bucket's answers are spread over for the Hodges-Lehmann estimate (evenly, as histogram_quantile
# interpolates): more is smoother and costs (buckets × points)² pairs.
_SPREAD = 8


def hodges_lehmann_ms(bounds: Sequence[float], first: np.ndarray, second: np.ndarray) -> float:
    """The Hodges-Lehmann shift of ``first`` over ``second`` in milliseconds (the median of every pairwise
    difference), from counts per bucket with bounds in seconds. Answers are spread evenly inside each bucket (from
    the bound below, 0 for the first); those above the last finite bound sit at it, as PromQL places them."""
    finite = [b for b in bounds if math.isfinite(b)]
    if not finite:
        raise ValueError("a latency histogram needs a finite bucket bound")
    points, weights_a, weights_b = [], [], []
    lower = 0.0
    for bound, x, y in zip(bounds, first, second, strict=True):
        if math.isfinite(bound):
            spots = lower + (bound - lower) * (np.arange(_SPREAD) + 0.5) / _SPREAD
            lower = bound
        else:
            spots = np.full(_SPREAD, finite[-1])
        points.append(spots * 1000)
        weights_a.append(np.full(_SPREAD, x / _SPREAD))
        weights_b.append(np.full(_SPREAD, y / _SPREAD))
    p, wa, wb = np.concatenate(points), np.concatenate(weights_a), np.concatenate(weights_b)
    a_at, b_at = wa > 0, wb > 0  # empty buckets pair with nothing
    differences = (p[a_at][:, None] - p[b_at][None, :]).ravel()
    weights = (wa[a_at][:, None] * wb[b_at][None, :]).ravel()
    order = np.argsort(differences, kind="stable")
    cumulative = np.cumsum(weights[order])
    return float(differences[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def g_test(first: Mapping[str, float], second: Mapping[str, float]) -> tuple[float, int]:
    """``(G, degrees of freedom)`` of the G-test of homogeneity of two category counts (the log-likelihood ratio
    of one shared distribution against one each; chi-square with categories - 1 degrees of freedom). Categories
    neither side saw are left out; a single category is no test: ``(0, 0)``."""
    keys = sorted(k for k in first.keys() | second.keys() if first.get(k, 0) + second.get(k, 0) > 0)
    if len(keys) < 2:
        return 0.0, 0
    table = np.array([[first.get(k, 0.0) for k in keys], [second.get(k, 0.0) for k in keys]], dtype=float)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    seen = table > 0
    return float(2 * np.sum(table[seen] * np.log(table[seen] / expected[seen]))), len(keys) - 1


def total_variation(first: Mapping[str, float], second: Mapping[str, float]) -> float | None:
    """Total variation distance between two category distributions: 0 identical, 1 disjoint; None when a side is
    empty."""
    a, b = sum(first.values()), sum(second.values())
    if a <= 0 or b <= 0:
        return None
    return 0.5 * sum(abs(first.get(k, 0.0) / a - second.get(k, 0.0) / b) for k in first.keys() | second.keys())
