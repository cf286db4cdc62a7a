"""Classification metrics and latency percentiles, in plain Python over label lists."""

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
    out: dict[str, dict[str, dict[str, float]]] = {}
    for field in fields:
        groups: dict[str, list[bool]] = {}
        for row, pred in zip(rows, predicted, strict=True):
            if field in row:
                groups.setdefault(str(row[field]), []).append(row["label"] == pred)
        if groups:
            out[field] = {v: {"accuracy": sum(h) / len(h), "n": len(h)} for v, h in sorted(groups.items())}
    return out


def percentiles_ms(samples_s: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000.0
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}
