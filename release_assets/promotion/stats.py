"""Is the candidate worse than the champion, or just different by chance? Paired tests on the same test rows.

Both models are scored on the same rows, so the comparison is paired: per row, the candidate is right or wrong
and so is the champion. Pairing removes the row-difficulty variance that comparing two accuracies ignores. A
candidate fails only when it is worse beyond noise (the bootstrap CI of the difference lies entirely below
``-tolerance``); McNemar's test on the discordant rows is reported alongside as the classical check.

A regression model (a numeric target) is compared the same way on per-row absolute errors: the relative change of
the MAE, ``(champion - candidate) / champion``, with a paired bootstrap CI; it fails only when the whole CI lies
below ``-tolerance``, a tolerated share of the champion's MAE.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

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


def _shared_rows(
    member: str,
    gate: str,
    severity: Literal["block", "warn"],
    bounds: dict[str, float | None],
    sides: tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]],
    ids: tuple[str, str | None],
    min_shared: int,
    rows_named: str,
) -> list[str] | Verdict:
    """The test rows both models answered and the truth knows, or the inconclusive verdict when there is no
    champion or too few such rows; the same model on both sides is an error (it would always pass)."""
    candidate, champion, expected = sides
    candidate_id, champion_id = ids
    if champion is None or champion_id is None:
        return Verdict(
            member, gate, "inconclusive", "no champion to compare the candidate with", None, bounds, severity
        )
    if candidate_id == champion_id:
        raise ValueError(
            f"{member}: the candidate and the champion are the same model ({candidate_id}); comparing a model "
            "with itself would always pass the regression gate"
        )
    shared = sorted(set(candidate) & set(champion) & set(expected))
    if len(shared) < min_shared:
        reason = (
            f"candidate and champion share only {len(shared)} {rows_named} (need {min_shared}); "
            "they were probably evaluated on different test sets"
        )
        return Verdict(member, gate, "inconclusive", reason, None, bounds, severity)
    return shared


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
    shared = _shared_rows(
        member,
        gate,
        severity,
        bounds,
        (candidate_predictions, champion_predictions, expected),
        (candidate_id, champion_id),
        min_shared,
        "labelled test rows",
    )
    if isinstance(shared, Verdict):
        return shared
    assert champion_predictions is not None  # _shared_rows answered for a missing champion
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


# Resampled row indices held in memory at once (a chunk of bootstrap resamples): bounded whatever the test size.
_BOOT_CELLS = 2_000_000


def _relative_change(champion_total: np.ndarray, candidate_total: np.ndarray) -> np.ndarray:
    """``(champion - candidate) / champion`` of summed errors, per resample: negative when the candidate errs more.
    A resample where the champion is exact is 0 when the candidate is exact too, else an unbounded worsening."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (champion_total - candidate_total) / champion_total
    return np.where(champion_total > 0, out, np.where(candidate_total > 0, -np.inf, 0.0))


def _resampled(n: int, n_boot: int, seed: int, statistic: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``statistic`` of ``n_boot`` paired resamples of ``n`` rows (each row drawn with replacement, the same rows for
    both sides), drawn in chunks of at most ``_BOOT_CELLS`` row indices so memory stays bounded."""
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    chunk = max(1, _BOOT_CELLS // n)
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        out[start : start + size] = statistic(rng.integers(0, n, size=(size, n)))
    return out


def paired_mean_ci(
    values_candidate: Sequence[float] | np.ndarray,
    values_champion: Sequence[float] | np.ndarray,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """``(mean difference, low, high)`` of candidate minus champion per-row values (a similarity, an F1), by the
    paired percentile bootstrap :func:`paired_bootstrap_ci` runs on right-or-wrong rows: each resample draws the
    same rows, with replacement, for both sides."""
    a, b = np.asarray(values_candidate, dtype=float), np.asarray(values_champion, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"need two equal, non-empty lists of per-row values, got {a.shape} and {b.shape}")
    d = a - b
    means = _resampled(len(d), n_boot, seed, lambda rows: d[rows].mean(axis=1))
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(d.mean()), float(low), float(high)


def paired_relative_mae_ci(
    errors_candidate: Sequence[float] | np.ndarray,
    errors_champion: Sequence[float] | np.ndarray,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """``(relative change, low, high)`` of the MAE, ``(champion MAE - candidate MAE) / champion MAE``, by a paired
    percentile bootstrap: each resample draws the same rows, with replacement, for both models' absolute errors.

    The bounds are resampled values (``inverted_cdf``): a resample where the champion happens to be exact gives
    an unbounded worsening, which interpolation would turn into NaN. The champion's MAE must not be 0.
    """
    a, b = np.asarray(errors_candidate, dtype=float), np.asarray(errors_champion, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"need two equal, non-empty lists of per-row errors, got {a.shape} and {b.shape}")
    if not b.sum() > 0:
        raise ValueError("the champion's MAE is 0: no relative change to measure")
    changes = _resampled(len(a), n_boot, seed, lambda rows: _relative_change(b[rows].sum(axis=1), a[rows].sum(axis=1)))
    low, high = np.quantile(changes, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")
    return float((b.sum() - a.sum()) / b.sum()), float(low), float(high)


def error_regression_verdict(
    member: str,
    candidate_values: dict[str, float],
    champion_values: dict[str, float] | None,
    expected: dict[str, float],
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
    """The regression gate of a regression model: fails when the candidate's MAE is surely worse than the
    champion's by more than ``tolerance`` (a share of the champion's MAE), on the same test rows.

    Observed is the relative change ``(champion MAE - candidate MAE) / champion MAE`` (negative: worse); the
    candidate fails only when the upper bound of its paired bootstrap CI lies below ``-tolerance``. No champion, or
    too few shared rows, is inconclusive, as for classifiers; the same model on both sides is an error.
    """
    bounds: dict[str, float | None] = {"min": -tolerance, "max": None}
    shared = _shared_rows(
        member,
        gate,
        severity,
        bounds,
        (candidate_values, champion_values, expected),
        (candidate_id, champion_id),
        min_shared,
        "test rows with a target",
    )
    if isinstance(shared, Verdict):
        return shared
    assert champion_values is not None  # _shared_rows answered for a missing champion
    cand = np.array([abs(float(candidate_values[i]) - float(expected[i])) for i in shared])
    champ = np.array([abs(float(champion_values[i]) - float(expected[i])) for i in shared])
    compared = f"MAE {cand.mean():.4g} vs champion {champ.mean():.4g} on {len(shared)} shared test rows"
    examples = [
        {
            "id": i,
            "expected": expected[i],
            "candidate": candidate_values[i],
            "champion": champion_values[i],
            "candidate_error": float(c),
            "champion_error": float(h),
        }
        for i, c, h in sorted(zip(shared, cand, champ, strict=True), key=lambda x: x[2] - x[1])
        if c > h
    ]
    if not champ.sum() > 0:
        # The champion is exact on every shared row: any error of the candidate is an unbounded relative
        # worsening, which no tolerance covers.
        exact = not cand.sum() > 0
        reason = f"{compared}: the champion is exact on every row, " + (
            "and so is the candidate" if exact else "so no relative tolerance covers the candidate's errors"
        )
        return Verdict(
            member,
            gate,
            "passed" if exact else "failed",
            reason,
            0.0 if exact else None,
            bounds,
            severity,
            examples=examples[:MAX_EXAMPLES],
        )
    change, low, high = paired_relative_mae_ci(cand, champ, n_boot=n_boot, seed=seed, alpha=alpha)
    worse = high < -tolerance
    reason = (
        f"{compared} ({change:+.1%}, {1 - alpha:.0%} paired bootstrap CI {low:+.1%} to {high:+.1%}): "
        f"{'surely' if worse else 'not surely'} worse than the tolerated {-tolerance + 0.0:.1%}"
    )
    return Verdict(
        member,
        gate,
        "failed" if worse else "passed",
        reason,
        change,
        bounds,
        severity,
        examples=examples[:MAX_EXAMPLES],
    )
