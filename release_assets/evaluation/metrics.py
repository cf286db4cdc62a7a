"""Classification and regression metrics and latency percentiles, over label lists and score arrays."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def accuracy(expected: Sequence[str], predicted: Sequence[str]) -> float:
    if not expected:
        return float("nan")
    return sum(e == p for e, p in zip(expected, predicted, strict=True)) / len(expected)


def per_class(expected: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict[str, dict]:
    out = {}
    for label in labels:
        tp = sum(e == label and p == label for e, p in zip(expected, predicted, strict=True))
        support = sum(e == label for e in expected)
        predicted_n = sum(p == label for p in predicted)
        precision = tp / predicted_n if predicted_n else 0.0
        recall = tp / support if support else float("nan")
        f1 = 2 * precision * recall / (precision + recall) if support and precision + recall else 0.0
        out[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    return out


def confusion(expected: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> list[list[int]]:
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for e, p in zip(expected, predicted, strict=True):
        if e in index and p in index:
            matrix[index[e]][index[p]] += 1
    return matrix


def classification_metrics(expected: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict:
    classes = per_class(expected, predicted, labels)
    present = [c for c in classes.values() if c["support"]]
    return {
        "accuracy": accuracy(expected, predicted),
        "macro_f1": float(np.mean([c["f1"] for c in present])) if present else float("nan"),
        "min_class_recall": min((c["recall"] for c in present), default=float("nan")),
        "per_class": classes,
        "confusion": confusion(expected, predicted, labels),
        "n": len(expected),
    }


def slice_accuracy(rows: Sequence[dict[str, Any]], predicted: Sequence[str], fields: Sequence[str]) -> dict:
    """Accuracy per value of each slice attribute (e.g. channel=chat), with the count behind it."""
    slices = [{f: str(row[f]) for f in fields if f in row} for row in rows]
    out = slice_hits(slices, [row["label"] == p for row, p in zip(rows, predicted, strict=True)])
    return {f: out[f] for f in fields if f in out}


def percentiles_ms(samples_s: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000.0
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def row_slices(rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> list[dict[str, str]]:
    """Each row's slice values by column: its ``slice`` mapping when it has one (table data sets name categorical
    columns for slice reports), else whichever of the top-level ``fields`` it carries (the built-in data sets)."""
    out = []
    for row in rows:
        source = row["slice"] if isinstance(row.get("slice"), dict) else {f: row[f] for f in fields if f in row}
        out.append({str(k): str(v) for k, v in source.items()})
    return out


def _slice_groups(slices: Sequence[dict[str, str]]) -> dict[str, dict[str, list[int]]]:
    """Row indices per value of each slice column: columns in the order first met, values sorted."""
    groups: dict[str, dict[str, list[int]]] = {}
    for i, values in enumerate(slices):
        for column, value in values.items():
            groups.setdefault(column, {}).setdefault(value, []).append(i)
    return {c: dict(sorted(values.items())) for c, values in groups.items()}


def slice_hits(slices: Sequence[dict[str, str]], hits: Sequence[bool]) -> dict[str, dict[str, dict[str, float]]]:
    """Accuracy per slice value (``{column: {value: {"accuracy", "n"}}}``, as ``slice_accuracy``) from each row's
    slice values (``row_slices``) and whether its prediction was right."""
    if len(slices) != len(hits):
        raise ValueError(f"{len(slices)} rows of slice values for {len(hits)} predictions")
    return {
        column: {v: {"accuracy": sum(hits[i] for i in idx) / len(idx), "n": len(idx)} for v, idx in values.items()}
        for column, values in _slice_groups(slices).items()
    }


def slice_mae(slices: Sequence[dict[str, str]], errors: Sequence[float]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean absolute error per slice value, ``{column: {value: {"mae", "n"}}}``, from each row's slice values and
    its absolute error."""
    if len(slices) != len(errors):
        raise ValueError(f"{len(slices)} rows of slice values for {len(errors)} errors")
    return {
        column: {v: {"mae": float(np.mean([errors[i] for i in idx])), "n": len(idx)} for v, idx in values.items()}
        for column, values in _slice_groups(slices).items()
    }


# Binary classification. ``y_true`` is 1 (or True) for the positive class, ``scores`` its predicted probability.
# A test set holding one class only measures neither ranking nor calibration: each returns None for it.


def _binary(y_true: Sequence[int | bool], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray] | None:
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"{y.shape[0] if y.ndim else 0} outcomes for {s.shape[0] if s.ndim else 0} scores")
    if not y.any() or y.all():  # empty, or a single class
        return None
    return y, s


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing the mean of the ranks they span."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + 1 + ends) / 2)[inverse]


def roc_auc(y_true: Sequence[int | bool], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve: the chance a random positive scores above a random negative (ties count half)."""
    data = _binary(y_true, scores)
    if data is None:
        return None
    y, s = data
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return float((_average_ranks(s)[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pr_auc(y_true: Sequence[int | bool], scores: Sequence[float]) -> float | None:
    """Average precision: precision at each distinct score threshold (highest first), weighted by the recall it
    adds, as scikit-learn's ``average_precision_score``."""
    data = _binary(y_true, scores)
    if data is None:
        return None
    y, s = data
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(y)[last_of_each_score]
    precision = tp / (last_of_each_score + 1)
    recall_gain = np.diff(np.r_[0, tp]) / tp[-1]
    return float(np.sum(recall_gain * precision))


CALIBRATION_BINS = 10


def calibration_error(
    y_true: Sequence[int | bool], scores: Sequence[float], bins: int = CALIBRATION_BINS
) -> float | None:
    """Expected calibration error of the positive class's probability: over ``bins`` equal-width bins of [0, 1]
    (the last one closed), the gap between the mean probability and the share of positives, weighted by the bin's
    share of rows."""
    data = _binary(y_true, scores)
    if data is None:
        return None
    y, s = data
    index = np.minimum((np.clip(s, 0.0, 1.0) * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(index):
        member = index == b
        total += member.sum() / len(s) * abs(y[member].mean() - s[member].mean())
    return float(total)


# Regression: ``expected`` the targets, ``predicted`` the model's values. None where there is nothing to measure.


def _regression(expected: Sequence[float], predicted: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    e = np.asarray(expected, dtype=float)
    p = np.asarray(predicted, dtype=float)
    if e.shape != p.shape or e.ndim != 1:
        raise ValueError(f"{e.shape[0] if e.ndim else 0} targets for {p.shape[0] if p.ndim else 0} predictions")
    return e, p


def rmse(expected: Sequence[float], predicted: Sequence[float]) -> float | None:
    e, p = _regression(expected, predicted)
    return float(np.sqrt(np.mean((e - p) ** 2))) if len(e) else None


def mae(expected: Sequence[float], predicted: Sequence[float]) -> float | None:
    e, p = _regression(expected, predicted)
    return float(np.mean(np.abs(e - p))) if len(e) else None


def r2(expected: Sequence[float], predicted: Sequence[float]) -> float | None:
    """Share of the target's variance the predictions explain; None when the target is constant (no variance)."""
    e, p = _regression(expected, predicted)
    total = float(np.sum((e - e.mean()) ** 2)) if len(e) else 0.0
    if total == 0.0:
        return None
    return 1.0 - float(np.sum((e - p) ** 2)) / total
