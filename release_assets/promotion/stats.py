"""Is the candidate worse than the champion, or just different by chance? Paired tests on the same test rows.

Both models are scored on the same rows, so the comparison is paired: per row, the candidate is right or wrong
and so is the champion. Pairing removes the row-difficulty variance that comparing two accuracies ignores. A
candidate fails only when it is worse beyond noise (the bootstrap CI of the difference lies entirely below
``-tolerance``); McNemar's test on the discordant rows is reported alongside as the classical check.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from release_assets.promotion.policy import Verdict

MIN_SHARED = 30
MAX_EXAMPLES = 20
EXACT_BELOW = 25  # discordant pairs under which McNemar's chi-square approximation is poor

# Per-row outcomes (right or wrong), as a list or a boolean array.
Outcomes = Sequence[bool] | np.ndarray


def _pairs(correct_candidate: Outcomes, correct_champion: Outcomes) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(correct_candidate, dtype=bool), np.asarray(correct_champion, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"need two equal, non-empty lists of per-row outcomes, got {a.shape} and {b.shape}")
    return a, b


def paired_bootstrap_ci(
    correct_candidate: Outcomes,
    correct_champion: Outcomes,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """``(mean difference, low, high)`` of candidate minus champion accuracy, percentile bootstrap over rows.

    Each row's difference is -1, 0 or +1, so resampling n rows with replacement is one multinomial draw of how
    many of each: the same bootstrap as indexing, vectorised, in O(n_boot) memory whatever the test size.
    """
    a, b = _pairs(correct_candidate, correct_champion)
    d = a.astype(int) - b.astype(int)
    n = len(d)
    probs = [np.mean(d == -1), np.mean(d == 0), np.mean(d == 1)]
    draws = np.random.default_rng(seed).multinomial(n, probs, size=n_boot)
    means = (draws[:, 2] - draws[:, 0]) / n
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(d.mean()), float(low), float(high)


def mcnemar(correct_candidate: Outcomes, correct_champion: Outcomes) -> tuple[float, float]:
    """``(statistic, p-value)`` of McNemar's test on the rows exactly one model got right.

    Under ``EXACT_BELOW`` discordant rows the p-value is the exact two-sided binomial test (statistic: the
    smaller discordant count); above, the continuity-corrected chi-square with one degree of freedom.
    """
    a, b = _pairs(correct_candidate, correct_champion)
    only_cand, only_champ = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_cand + only_champ
    if n == 0:
        return 0.0, 1.0
    if n < EXACT_BELOW:
        smaller = min(only_cand, only_champ)
        return float(smaller), _two_sided_sign_test(smaller, n)
    statistic = (abs(only_cand - only_champ) - 1) ** 2 / n
    # The chi-square survival function with one degree of freedom, in closed form.
    return float(statistic), math.erfc(math.sqrt(statistic / 2))


def _two_sided_sign_test(smaller: int, n: int) -> float:
    """Exact two-sided binomial p-value at p = 1/2 (what ``scipy.stats.binomtest(k, n).pvalue`` gives there), in
    closed form: the distribution is symmetric, so it is twice the lower tail up to the smaller count, at most 1.
    Spelled out because importing scipy.stats costs the gate step most of a second."""
    tail = sum(math.comb(n, i) for i in range(smaller + 1)) / 2**n
    return min(1.0, 2 * tail)


def regression_verdict(
    member: str,
    candidate_predictions: dict[str, str],
    champion_predictions: dict[str, str] | None,
    expected: dict[str, str],
    tolerance: float,
    candidate_id: str,
    champion_id: str | None,
    *,
    min_shared: int = MIN_SHARED,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    gate: str = "no_regression",
    severity: Literal["block", "warn"] = "block",
) -> Verdict:
    """Fails when the candidate is less accurate than the champion by more than ``tolerance``, beyond noise.

    Raises ``ValueError`` when ``candidate_id == champion_id``: a model compared with itself always "passes",
    which silently disables the gate, so it must never happen.
    """
    bounds: dict[str, float | None] = {"min": -tolerance, "max": None}
    if champion_predictions is None or champion_id is None:
        return Verdict(
            member, gate, "inconclusive", "no champion to compare the candidate with", None, bounds, severity
        )
    if candidate_id == champion_id:
        raise ValueError(
            f"{member}: the candidate and the champion are the same model ({candidate_id}); comparing a model "
            "with itself would always pass the regression gate"
        )
    shared = sorted(set(candidate_predictions) & set(champion_predictions) & set(expected))
    if len(shared) < min_shared:
        return Verdict(
            member,
            gate,
            "inconclusive",
            f"candidate and champion share only {len(shared)} labelled test rows (need {min_shared}); "
            "they were probably evaluated on different test sets",
            None,
            bounds,
            severity,
        )
    cand = np.array([candidate_predictions[i] == expected[i] for i in shared])
    champ = np.array([champion_predictions[i] == expected[i] for i in shared])
    diff, low, high = paired_bootstrap_ci(cand, champ, n_boot=n_boot, seed=seed, alpha=alpha)
    _, p_value = mcnemar(cand, champ)
    worse = high < -tolerance
    verdict_text = (
        f"the whole CI lies below the tolerance {-tolerance:+.4f}: worse beyond noise"
        if worse
        else f"the CI reaches above the tolerance {-tolerance:+.4f}: not worse beyond noise"
    )
    reason = (
        f"candidate accuracy {cand.mean():.4f} vs champion {champ.mean():.4f} on {len(shared)} shared test rows: "
        f"difference {diff:+.4f}, {1 - alpha:.0%} paired bootstrap CI {low:+.4f} to {high:+.4f}; {verdict_text}. "
        f"McNemar p={p_value:.3g} ({int(np.sum(cand & ~champ))} rows only the candidate got right, "
        f"{int(np.sum(~cand & champ))} only the champion)"
    )
    examples = [
        {"id": i, "expected": expected[i], "candidate": candidate_predictions[i], "champion": champion_predictions[i]}
        for i, c, h in zip(shared, cand, champ, strict=True)
        if h and not c
    ]
    return Verdict(
        member,
        gate,
        "failed" if worse else "passed",
        reason,
        float(cand.mean()),
        bounds,
        severity,
        champion=float(champ.mean()),
        examples=examples[:MAX_EXAMPLES],
    )
