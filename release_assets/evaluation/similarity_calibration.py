"""Where to put a similarity gate's threshold, and what it can and cannot catch: calibrated on the labelled set.

The labelled set (``data/judge/labelled.jsonl``) holds, per customer message (a group), one faithful reply and
replies people labelled pass or fail one by one: paraphrases, a wrong number, a negation, an invented claim, a rude
tone, ... A similarity check compares a reply with a reference, as the golden suite compares a reply with its
``reference_reply``; here the reference is the group's faithful reply, and every other reply of the group is scored
against it. The threshold is chosen on the training half only (the one that agrees most often with the labels; the
middle of the best run of thresholds), then reported on the held-out half with accuracy and Cohen's kappa (group
bootstrap intervals, ``judge_calibration.agreement``). The table by kind shows which check catches what: a
similarity scores a negated or one-number-off reply close to the reference, so only a fact check or the judge
catches those.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from release_assets.evaluation.golden import token_f1
from release_assets.evaluation.judge_calibration import agreement
from release_assets.models.judge_model import HELD_OUT

REFERENCE_KIND = "faithful"  # the labelled set's reply that states the facts as they are: each group's reference
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")

# A check: (replies, references) -> one score per pair; a reply passes when its score reaches the threshold.
Check = Callable[[list[str], list[str]], np.ndarray]


def token_f1_check(replies: list[str], references: list[str]) -> np.ndarray:
    return np.array([token_f1(r, ref) for r, ref in zip(replies, references, strict=True)])


def numbers_check(replies: list[str], references: list[str]) -> np.ndarray:
    """1 when every number the reference states appears in the reply, else 0: what the golden suite's key phrases
    (``must_contain``: "within 5 business days", "up to 40%") check, read off the reference instead."""
    return np.array(
        [
            float(set(_NUMBER.findall(ref)) <= set(_NUMBER.findall(reply)))
            for reply, ref in zip(replies, references, strict=True)
        ]
    )


def scored_rows(rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Every labelled reply but its group's reference (the group's first faithful reply, by id; a second faithful
    reply is scored like any other), each with that reference; and how many rows were left out because their group
    has no faithful reply to compare with."""
    references: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: r["id"]):
        if row["kind"] == REFERENCE_KIND:
            references.setdefault(row["group"], row)
    out = [
        {**row, "reference": references[row["group"]]["reply"]}
        for row in rows
        if row["group"] in references and row is not references[row["group"]]
    ]
    without = sum(1 for row in rows if row["group"] not in references)
    return out, without


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """``(threshold, balanced accuracy)``: the threshold between two neighbouring scores at which ``score >=
    threshold`` best separates the replies labelled pass from those labelled fail (the mean of the shares of each
    it gets right, Youden's J + 1 over 2: plain accuracy would pick "fail everything" on a set where most replies
    fail); of a run of equally good ones, the middle (the farthest from either side's replies)."""
    values = np.unique(scores)
    candidates = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    passed = scores[None, :] >= candidates[:, None]
    balanced = (passed[:, labels].mean(axis=1) + (~passed[:, ~labels]).mean(axis=1)) / 2
    best = np.flatnonzero(balanced == balanced.max())
    return float(candidates[best[len(best) // 2]]), float(balanced.max())


def calibrate(
    rows: Sequence[dict[str, Any]], check: Check, label: str = "factual_consistency", seed: int = 0
) -> dict[str, Any]:
    """The threshold chosen on the training half, its agreement with the labels on the held-out half, and the share
    of each kind's held-out replies it judges as people did. ``label``: the rubric whose verdict is the truth (a
    similarity measures content, so by default whether the reply is consistent with the facts; ``verdict`` for
    the overall one, tone included)."""
    scored, without_reference = scored_rows(rows)
    scores = check([r["reply"] for r in scored], [r["reference"] for r in scored])
    labels = np.array([(r["verdict"] if label == "verdict" else r["verdicts"][label]) == "pass" for r in scored])
    held = np.array([r["split"] == HELD_OUT for r in scored])
    if held.all() or not held.any():
        raise ValueError(f"the labelled set needs both halves (split `{HELD_OUT}` and the rest) to calibrate on")
    threshold, train_accuracy = best_threshold(scores[~held], labels[~held])
    passed = scores >= threshold
    held_rows = [r for r, h in zip(scored, held, strict=True) if h]
    pairs = [(bool(p), bool(lab)) for p, lab, h in zip(passed, labels, held, strict=True) if h]
    held_scores = scores[held]
    by_kind: dict[str, dict[str, Any]] = {}
    for row, (judged, truth), value in zip(held_rows, pairs, held_scores, strict=True):
        entry = by_kind.setdefault(row["kind"], {"rows": 0, "agree": 0, "passes": 0, "scores": []})
        entry["rows"] += 1
        entry["agree"] += judged == truth
        entry["passes"] += truth
        entry["scores"].append(float(value))
    for entry in by_kind.values():
        entry["label"] = "pass" if entry["passes"] == entry["rows"] else "fail" if not entry["passes"] else "mixed"
        entry["median_score"] = float(np.median(entry.pop("scores")))
    return {
        "threshold": threshold,
        "train_rows": int((~held).sum()),
        "without_reference": without_reference,
        "train_balanced_accuracy": train_accuracy,
        "label": label,
        "held_out": agreement(pairs, [r["group"] for r in held_rows], seed=seed),
        "by_kind": {k: {**v, "share": v["agree"] / v["rows"]} for k, v in sorted(by_kind.items())},
    }


def calibration_table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown: per check, its threshold and held-out agreement; then, per kind of reply, the share each check
    judges as people did (for a kind people fail, the share it catches) and the kind's median score."""
    names = list(results)
    lines = [
        "| check | threshold (train half; balanced accuracy there) | held-out accuracy [95% CI] | held-out kappa "
        "[95% CI] |",
        "|---|---|---|---|",
    ]
    for name, r in results.items():
        h = r["held_out"]
        lines.append(
            f"| {name} | {r['threshold']:.3f} ({r['train_balanced_accuracy']:.3f}) | {h['accuracy']:.3f} "
            f"[{h['accuracy_ci'][0]:.3f}, {h['accuracy_ci'][1]:.3f}] | {h['kappa']:.3f} [{h['kappa_ci'][0]:.3f}, "
            f"{h['kappa_ci'][1]:.3f}] |"
        )
    kinds = sorted({k for r in results.values() for k in r["by_kind"]})
    lines += [
        "",
        "| kind (people say) | held-out rows | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for kind in kinds:
        first = next(r["by_kind"][kind] for r in results.values() if kind in r["by_kind"])
        shares = [
            f"{r['by_kind'][kind]['share']:.2f} (median {r['by_kind'][kind]['median_score']:.2f})"
            if kind in r["by_kind"]
            else ""
            for r in results.values()
        ]
        lines.append(f"| {kind} ({first['label']}) | {first['rows']} | " + " | ".join(shares) + " |")
    return "\n".join(lines)
