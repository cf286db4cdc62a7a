"""A chain against its champion, case by case: the ``golden_regression`` gate.

Fixed floors let a prompt edit that loses many points publish as long as it stays above them. This gate compares
every metric the golden cases score (``cases.jsonl``'s per-case ``scores``: intent, facts, similarities, ...) with
the champion's scores on the same cases, paired, by the models' regression test (``stats.py``): a percentile
bootstrap of the per-case differences, failing only when the whole CI lies below ``-tolerance`` (worse beyond
noise); McNemar's test is reported beside it for the right-or-wrong metrics. A case is paired only when its golden
entry is the same on both sides (each evaluation keeps a copy of the suite it scored), so an edited case or a new
suite is never read as a regression. No champion, a champion evaluated before per-case scores, or too few shared
cases is inconclusive, as it is for the models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from release_assets.datasets.build import read_jsonl
from release_assets.promotion.inputs import MemberInputs
from release_assets.promotion.stats import MAX_EXAMPLES, MIN_SHARED, mcnemar, paired_bootstrap_ci, paired_mean_ci
from release_assets.verdict import Verdict

if TYPE_CHECKING:
    from release_assets.manifest import Threshold

GATE = "golden_regression"
CASES_FILE = "cases.jsonl"
GOLDEN_FILE = "golden.jsonl"  # evaluation/chain_evaluation.GOLDEN_FILE: the suite an evaluation scored
LOWER_IS_BETTER = frozenset({"confident_wrong_rate"})
# Per-case values that are 0 or 1: their mean is a rate, compared as the models' accuracy is (with McNemar).
RATES = frozenset({"format_valid", "intent_accuracy", "required_facts", "forbidden_absent", "confident_wrong_rate"})


def _scores(folder: Path) -> dict[str, dict[str, float]] | None:
    """Case id -> that case's scores; None when the evaluation predates per-case scores."""
    rows = read_jsonl(folder / CASES_FILE)
    if rows and not all("scores" in r for r in rows):
        return None
    return {r["id"]: r["scores"] for r in rows}


def _golden(folder: Path) -> dict[str, str]:
    return {c["id"]: json.dumps(c, sort_keys=True) for c in read_jsonl(folder / GOLDEN_FILE)}


def compare_metric(
    metric: str, candidate: np.ndarray, champion: np.ndarray, tolerance: float, seed: int
) -> dict[str, Any]:
    """One metric's paired comparison, oriented so that a negative difference is always a worsening."""
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    if metric in RATES:
        better_cand, better_champ = (candidate > 0.5), (champion > 0.5)
        if sign < 0:
            better_cand, better_champ = ~better_cand, ~better_champ
        diff, low, high = paired_bootstrap_ci(better_cand, better_champ, seed=seed)
        _, p_value = mcnemar(better_cand, better_champ)
        extra = f", McNemar p={p_value:.3g}"
    else:
        diff, low, high = paired_mean_ci(sign * candidate, sign * champion, seed=seed)
        extra = ""
    worse = high < -tolerance
    return {
        "metric": metric,
        "candidate": float(candidate.mean()),
        "champion": float(champion.mean()),
        "difference": diff,
        "low": low,
        "high": high,
        "worse": worse,
        "text": f"{metric} {candidate.mean():.4f} vs {champion.mean():.4f} (difference {diff:+.4f}, CI {low:+.4f} to "
        f"{high:+.4f}{extra})" + (": WORSE" if worse else ""),
    }


def golden_regression_verdict(
    member: str,
    candidate: dict[str, dict[str, float]],
    champion: dict[str, dict[str, float]] | None,
    shared: list[str],
    tolerance: float,
    *,
    champion_version: str | None,
    min_shared: int = MIN_SHARED,
    seed: int = 0,
) -> Verdict:
    """The verdict from both sides' per-case scores on the ``shared`` cases (same id, same golden entry)."""
    bounds: dict[str, float | None] = {"min": -tolerance, "max": None}

    def inconclusive(reason: str) -> Verdict:
        return Verdict(member, GATE, "inconclusive", reason, None, bounds)

    if champion is None:
        return inconclusive(f"champion {champion_version} has no per-case scores (evaluated before they existed)")
    if len(shared) < min_shared:
        return inconclusive(
            f"candidate and champion share only {len(shared)} unchanged golden cases (need {min_shared}); the golden "
            "suite changed too much to compare them case by case"
        )
    metrics = sorted({m for i in shared for m in candidate[i]} & {m for i in shared for m in champion[i]})
    results = []
    for metric in metrics:
        cases = [i for i in shared if metric in candidate[i] and metric in champion[i]]
        if len(cases) < min_shared:
            continue
        cand = np.array([candidate[i][metric] for i in cases], dtype=float)
        champ = np.array([champion[i][metric] for i in cases], dtype=float)
        results.append({**compare_metric(metric, cand, champ, tolerance, seed), "cases": cases})
    if not results:
        return inconclusive(f"no metric is scored on {min_shared} shared cases by both")
    worse = [r for r in results if r["worse"]]
    worst = min(results, key=lambda r: r["difference"])
    reason = (
        f"against champion {champion_version} on {len(shared)} unchanged golden cases, 95% paired bootstrap CIs, "
        f"tolerance {-tolerance:+.4f}: "
        + "; ".join(r["text"] for r in sorted(results, key=lambda r: r["difference"]))
        + (f". Worse beyond noise: {', '.join(r['metric'] for r in worse)}" if worse else ". None worse beyond noise")
    )
    examples = []
    for r in worse:
        sign = -1.0 if r["metric"] in LOWER_IS_BETTER else 1.0
        lost = [(sign * (candidate[i][r["metric"]] - champion[i][r["metric"]]), i) for i in r["cases"]]
        for loss, case_id in sorted(lost)[:MAX_EXAMPLES]:
            if loss < 0:
                examples.append(
                    {
                        "id": case_id,
                        "metric": r["metric"],
                        "candidate": round(candidate[case_id][r["metric"]], 4),
                        "champion": round(champion[case_id][r["metric"]], 4),
                    }
                )
    return Verdict(
        member,
        GATE,
        "failed" if worse else "passed",
        reason,
        worst["difference"],
        bounds,
        champion=None,
        examples=examples[:MAX_EXAMPLES],
    )


def golden_regression(member: str, inputs: MemberInputs, t: Threshold) -> Verdict:
    """The gate: this evaluation's per-case scores against the champion's evaluation of the same chain member."""
    tolerance = -float(t.min or 0.0)
    bounds: dict[str, float | None] = {"min": t.min, "max": None}
    champion = inputs.champion
    if champion is None or champion.version is None:
        return Verdict(member, GATE, "inconclusive", "no champion to compare the candidate with", None, bounds)
    champion_dir = champion.member_dir(f"{member}_evaluation")
    if champion_dir is None:
        return Verdict(
            member, GATE, "inconclusive", f"champion {champion.version} has no {member}_evaluation", None, bounds
        )
    ours = inputs.dir("evaluation")
    candidate_scores = _scores(ours)
    if candidate_scores is None:
        raise ValueError(f"{ours / CASES_FILE}: a case without `scores` (the evaluation writes them for every case)")
    champion_scores = _scores(champion_dir)
    golden, champion_golden = _golden(ours), _golden(champion_dir)
    shared = sorted(
        i
        for i in candidate_scores
        if champion_scores is not None and i in champion_scores and golden.get(i) == champion_golden.get(i)
    )
    return golden_regression_verdict(
        member,
        candidate_scores,
        champion_scores,
        shared,
        tolerance,
        champion_version=champion.version,
        min_shared=int(t.params.get("min_shared", MIN_SHARED)),
        seed=int(t.params.get("seed", 0)),
    )
