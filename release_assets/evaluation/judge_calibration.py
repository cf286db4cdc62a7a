"""How far the judge agrees with people: its verdicts on the labelled set's held-out half (rows it never trained on)
against the labels, as accuracy and Cohen's kappa with 95% confidence intervals.

Kappa corrects accuracy for the agreement two raters reach by chance given how often each says "pass"; a judge that
passes everything agrees often with a set that mostly passes, and kappa shows it. The intervals come from a
bootstrap that resamples whole groups (all replies to one customer message together: they are not independent),
2,000 resamples with a fixed seed so a rerun gives the same figures; accuracy also gets Wilson's interval, which
treats rows as independent and so is the narrower, optimistic one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from release_assets.evaluation.judge import Judge, JudgeItem
from release_assets.models.judge_model import HELD_OUT

BOOTSTRAP = 2000
Z95 = 1.959963984540054
DISAGREEMENTS_SHOWN = 10


def kappa(pairs: Sequence[tuple[bool, bool]]) -> float:
    """Cohen's kappa of two raters' pass/fail (1 = perfect, 0 = chance); NaN when chance agreement is total."""
    n = len(pairs)
    if not n:
        return float("nan")
    observed = sum(a == b for a, b in pairs) / n
    pa, pb = sum(a for a, _ in pairs) / n, sum(b for _, b in pairs) / n
    expected = pa * pb + (1 - pa) * (1 - pb)
    return (observed - expected) / (1 - expected) if expected < 1 else float("nan")


def wilson(successes: int, n: int) -> tuple[float, float]:
    if not n:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _percentile(values: list[float], q: float) -> float:
    values = sorted(v for v in values if not math.isnan(v))
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def agreement(
    pairs: Sequence[tuple[bool, bool]], groups: Sequence[str], seed: int = 0, resamples: int = BOOTSTRAP
) -> dict[str, Any]:
    """Accuracy and kappa of (judge, label) pairs with group-bootstrap 95% intervals, and Wilson's for accuracy."""
    n = len(pairs)
    hits = sum(a == b for a, b in pairs)
    by_group: dict[str, list[tuple[bool, bool]]] = {}
    for pair, group in zip(pairs, groups, strict=True):
        by_group.setdefault(group, []).append(pair)
    names = sorted(by_group)
    rng = random.Random(seed)
    accs, kappas = [], []
    for _ in range(resamples if names else 0):
        sample = [p for g in rng.choices(names, k=len(names)) for p in by_group[g]]
        accs.append(sum(a == b for a, b in sample) / len(sample))
        kappas.append(kappa(sample))
    low, high = wilson(hits, n)
    return {
        "rows": n,
        "groups": len(names),
        "accuracy": hits / n if n else float("nan"),
        "accuracy_ci": [_percentile(accs, 0.025), _percentile(accs, 0.975)],
        "accuracy_wilson_ci": [low, high],
        "kappa": kappa(pairs),
        "kappa_ci": [_percentile(kappas, 0.025), _percentile(kappas, 0.975)],
    }


def calibrate(judge: Judge, labelled: Sequence[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """The judge (backend, rubrics, thresholds as configured) on the held-out rows, against their labels: overall
    and per rubric, per domain and per kind of hard case, and the rows it disagrees on. When the judge cannot
    answer a row, ``unanswered`` says how many and why, and no figure is reported (the gate is inconclusive)."""
    rows = [r for r in labelled if r["split"] == HELD_OUT]
    items = [JudgeItem(r["id"], r.get("message", ""), list(r["facts"]), r["reply"]) for r in rows]
    judgements = judge.judge(items)
    failed = [j for j in judgements if j.error is not None]
    out: dict[str, Any] = {"rows": len(rows), "unanswered": len(failed)}
    if failed:
        out["first_error"] = failed[0].error
        return out
    spec = judge.spec
    said = [j.overall(spec) == "pass" for j in judgements]
    truth = [r["verdict"] == "pass" for r in rows]
    groups = [r["group"] for r in rows]
    out["overall"] = agreement(list(zip(said, truth, strict=True)), groups, seed)
    out["rubrics"] = {
        rubric: agreement(
            [
                (j.verdicts(spec)[rubric] == "pass", r["verdicts"][rubric] == "pass")
                for j, r in zip(judgements, rows, strict=True)
            ],
            groups,
            seed,
            resamples=0,
        )
        for rubric in spec.rubrics
    }
    for facet in ("domain", "kind"):
        values = sorted({str(r.get(facet)) for r in rows})
        out[f"by_{facet}"] = {
            v: round(
                sum(s == t for s, t, r in zip(said, truth, rows, strict=True) if str(r.get(facet)) == v)
                / sum(1 for r in rows if str(r.get(facet)) == v),
                4,
            )
            for v in values
        }
    wrong = [(j, r) for j, r, s, t in zip(judgements, rows, said, truth, strict=True) if s != t]
    out["disagreements"] = [
        {
            "id": r["id"],
            "kind": r.get("kind"),
            "label": r["verdict"],
            "judge": j.overall(spec),
            "reason": "{}: {}".format(*j.worst(spec)[::2]),
            "reply": r["reply"][:120],
        }
        for j, r in sorted(wrong, key=lambda jr: jr[1]["id"])[:DISAGREEMENTS_SHOWN]
    ]
    out["disagreement_count"] = len(wrong)
    return out


def calibration_metrics(calibration: dict[str, Any]) -> dict[str, float]:
    """``judge_agreement`` and ``judge_kappa`` on the held-out half, when every row was judged."""
    if calibration.get("unanswered") or "overall" not in calibration:
        return {}
    return {"judge_agreement": calibration["overall"]["accuracy"], "judge_kappa": calibration["overall"]["kappa"]}
