"""A model report's plots: confusion matrix, per-class recall, reliability (classifiers); ROC and precision-recall
curves (binary); residuals and predicted against actual (regression). Inputs are the report's own figures and the
test split's rows as the evaluation saw them (expected, predicted, confidence or score)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from release_assets.plots.render import BAD, CANDIDATE, LIMIT, MUTED, Plot, draw, kept, shorten

TITLES = {
    "confusion_matrix": "Confusion matrix",
    "per_class_recall": "Recall per class",
    "reliability": "Reliability (calibration)",
    "roc": "ROC curve",
    "pr": "Precision-recall curve",
    "residuals": "Residuals",
    "predicted_vs_actual": "Predicted vs actual",
}
# The report plots that show why each metric gate failed: a failed check shows these, read from the report's
# evidence (drawn when the report was built, so nothing is drawn twice and the check shows what the report shows).
EXPLAINS = {
    "accuracy": ("confusion_matrix",),
    "macro_f1": ("per_class_recall", "confusion_matrix"),
    "min_class_recall": ("per_class_recall",),
    "regression": ("confusion_matrix", "predicted_vs_actual"),  # a classifier's, or a regression model's
    "roc_auc": ("roc",),
    "pr_auc": ("pr",),
    "calibration_error": ("reliability",),
    "rmse": ("predicted_vs_actual", "residuals"),
    "mae": ("predicted_vs_actual", "residuals"),
    "r2": ("predicted_vs_actual",),
}
BINS = 10
MAX_POINTS = 2000  # a scatter of more points shows nothing more at 400 pixels


def confusion_matrix(labels: Sequence[str], matrix: Sequence[Sequence[int]]) -> Plot | None:
    counts = np.asarray(matrix, dtype=float).reshape(len(labels), len(labels))
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    n = len(labels)

    def paint(fig: Any) -> None:
        ax = fig.add_subplot()
        ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
        names = [shorten(x, 12) for x in labels]
        ax.set_xticks(range(n), names, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
        ax.set_yticks(range(n), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("expected")
        if n <= 12:
            for i in range(n):
                for j in range(n):
                    if counts[i, j]:
                        colour = "white" if share[i, j] > 0.6 else "black"
                        ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=6, color=colour)
        ax.set_title("Confusion matrix (shaded by share of each expected class)")
        fig.tight_layout()

    return draw("confusion_matrix", TITLES["confusion_matrix"], paint, size=(5.0, 4.0))


def per_class_recall(per_class: dict[str, dict[str, float]], floor: float | None = None) -> Plot | None:
    """Recall of each class with its support; ``floor``: the min_class_recall gate's bound, drawn when given."""
    names = list(per_class)
    recall = [float(per_class[k]["recall"]) for k in names]

    def paint(fig: Any) -> None:
        ax = fig.add_subplot()
        colours = [BAD if floor is not None and r < floor else CANDIDATE for r in recall]
        ax.barh(range(len(names)), recall, color=colours)
        ax.set_yticks(range(len(names)), [f"{shorten(k, 14)} (n={int(per_class[k]['support'])})" for k in names])
        ax.invert_yaxis()
        ax.set_xlim(0, 1.0)
        ax.set_xlabel("recall on the test split")
        if floor is not None:
            ax.axvline(floor, color=LIMIT, linestyle="--", linewidth=1, label=f"gate min {floor:g}")
            ax.legend(loc="lower right")
        ax.set_title("Recall per class")
        fig.tight_layout()

    return draw("per_class_recall", TITLES["per_class_recall"], paint, size=(5.0, max(2.2, 0.9 + 0.22 * len(names))))


def calibration_bins(scores: Sequence[float], hits: Sequence[bool], bins: int = BINS) -> list[dict[str, float]]:
    """Equal-width bins of ``scores`` (0..1): each non-empty bin's mean score, observed frequency and count."""
    s, h = np.asarray(scores, dtype=float), np.asarray(hits, dtype=float)
    index = np.minimum((s * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        inside = index == b
        if inside.any():
            out.append(
                {
                    "low": b / bins,
                    "mean_score": float(s[inside].mean()),
                    "observed": float(h[inside].mean()),
                    "n": int(inside.sum()),
                }
            )
    return out


def reliability(scores: Sequence[float], hits: Sequence[bool], what: str) -> Plot | None:
    """Observed frequency against stated confidence, by confidence bin. ``what``: which score (the top class's
    confidence for a multiclass model, the positive class's probability for a binary one)."""
    bins = calibration_bins(scores, hits)
    n = sum(b["n"] for b in bins)
    ece = sum(b["n"] * abs(b["observed"] - b["mean_score"]) for b in bins) / n if n else 0.0

    def paint(fig: Any) -> None:
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], color=MUTED, linestyle="--", linewidth=1, label="perfectly calibrated")
        ax.bar(
            [b["low"] for b in bins],
            [b["observed"] for b in bins],
            width=1 / BINS,
            align="edge",
            color=CANDIDATE,
            alpha=0.75,
            edgecolor="white",
            label="observed",
        )
        ax.plot([b["mean_score"] for b in bins], [b["observed"] for b in bins], "o", color=LIMIT, markersize=3)
        for b in bins:
            ax.text(b["low"] + 0.5 / BINS, 0.02, str(b["n"]), ha="center", fontsize=5.5, color="white")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(what)
        ax.set_ylabel("observed frequency")
        ax.set_title(f"Reliability ({n} rows, expected calibration error {ece:.3f})")
        ax.legend(loc="upper left")
        fig.tight_layout()

    return draw("reliability", TITLES["reliability"], paint)


def _ranked(positive: Sequence[bool], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative true and false positives at each distinct score, highest score first (ties move together)."""
    s, y = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last row of each run of equal scores
    tp = np.cumsum(y)[last]
    fp = np.cumsum(~y)[last]
    return tp.astype(float), fp.astype(float)


def roc_points(positive: Sequence[bool], scores: Sequence[float]) -> tuple[list[float], list[float]]:
    tp, fp = _ranked(positive, scores)
    p, n = tp[-1] if len(tp) else 0.0, fp[-1] if len(fp) else 0.0
    fpr = np.r_[0.0, fp / n] if n else np.r_[0.0, np.zeros_like(fp)]
    tpr = np.r_[0.0, tp / p] if p else np.r_[0.0, np.zeros_like(tp)]
    return fpr.tolist(), tpr.tolist()


def pr_points(positive: Sequence[bool], scores: Sequence[float]) -> tuple[list[float], list[float]]:
    tp, fp = _ranked(positive, scores)
    p = tp[-1] if len(tp) else 0.0
    recall = np.r_[0.0, tp / p] if p else np.r_[0.0, np.zeros_like(tp)]
    precision = np.r_[1.0, tp / np.maximum(tp + fp, 1)]
    return recall.tolist(), precision.tolist()


def roc(positive: Sequence[bool], scores: Sequence[float], auc: float | None) -> Plot | None:
    fpr, tpr = roc_points(positive, scores)

    def paint(fig: Any) -> None:
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], color=MUTED, linestyle="--", linewidth=1, label="chance")
        ax.step(
            fpr,
            tpr,
            where="post",
            color=CANDIDATE,
            linewidth=1.5,
            label="model" + (f" (AUC {auc:.3f})" if auc is not None else ""),
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title("ROC curve (positive class)")
        ax.legend(loc="lower right")
        fig.tight_layout()

    return draw("roc", TITLES["roc"], paint)


def pr(positive: Sequence[bool], scores: Sequence[float], auc: float | None) -> Plot | None:
    recall, precision = pr_points(positive, scores)
    base = float(np.mean(positive)) if len(positive) else 0.0

    def paint(fig: Any) -> None:
        ax = fig.add_subplot()
        ax.axhline(base, color=MUTED, linestyle="--", linewidth=1, label=f"positive share {base:.2f}")
        ax.step(
            recall,
            precision,
            where="post",
            color=CANDIDATE,
            linewidth=1.5,
            label="model" + (f" (PR AUC {auc:.3f})" if auc is not None else ""),
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title("Precision-recall curve (positive class)")
        ax.legend(loc="lower left")
        fig.tight_layout()

    return draw("pr", TITLES["pr"], paint)


def _thinned(*columns: Sequence[float]) -> list[np.ndarray]:
    """At most MAX_POINTS rows, evenly spaced, the same rows of every column (deterministic: no sampling)."""
    arrays = [np.asarray(c, dtype=float) for c in columns]
    n = len(arrays[0])
    if n <= MAX_POINTS:
        return arrays
    keep = np.linspace(0, n - 1, MAX_POINTS).round().astype(int)
    return [a[keep] for a in arrays]


def residuals(expected: Sequence[float], predicted: Sequence[float]) -> Plot | None:
    actual, got = _thinned(expected, predicted)
    error = actual - got

    def paint(fig: Any) -> None:
        ax = fig.add_subplot()
        ax.axhline(0.0, color=LIMIT, linewidth=1)
        ax.scatter(got, error, s=6, color=CANDIDATE, alpha=0.5, linewidths=0)
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual \u2212 predicted")
        ax.set_title(f"Residuals ({len(expected)} test rows)")
        fig.tight_layout()

    return draw("residuals", TITLES["residuals"], paint)


def predicted_vs_actual(expected: Sequence[float], predicted: Sequence[float]) -> Plot | None:
    actual, got = _thinned(expected, predicted)

    def paint(fig: Any) -> None:
        ax = fig.add_subplot()
        if len(actual):
            low, high = float(min(actual.min(), got.min())), float(max(actual.max(), got.max()))
            ax.plot([low, high], [low, high], color=MUTED, linestyle="--", linewidth=1, label="perfect")
        ax.scatter(actual, got, s=6, color=CANDIDATE, alpha=0.5, linewidths=0, label="test rows")
        ax.set_xlabel("actual")
        ax.set_ylabel("predicted")
        ax.set_title(f"Predicted vs actual ({len(expected)} test rows)")
        ax.legend(loc="upper left")
        fig.tight_layout()

    return draw("predicted_vs_actual", TITLES["predicted_vs_actual"], paint)


def report_plots(summary: dict[str, Any], rows: dict[str, Any], gates: dict[str, float] | None = None) -> list[Plot]:
    """Every plot of one model report. ``summary``: the report's (task, labels, confusion, per_class, metrics);
    ``rows``: the test rows as evaluated: ``expected`` and ``predicted`` (labels, or values for regression), and
    for classifiers ``confidence`` (the top class's probability), for binary ones ``positive`` (whether the row is
    of the positive class) and ``score`` (its probability); ``gates``: bounds worth drawing (min_class_recall)."""
    task = summary.get("task")
    metrics = summary.get("metrics", {})
    if task == "regression":
        return kept(
            [residuals(rows["expected"], rows["predicted"]), predicted_vs_actual(rows["expected"], rows["predicted"])]
        )
    hits = [e == p for e, p in zip(rows["expected"], rows["predicted"], strict=True)]
    plots = [
        confusion_matrix(summary["labels"], summary["confusion"]),
        per_class_recall(summary["per_class"], (gates or {}).get("min_class_recall")),
    ]
    if task == "binary":
        plots += [
            reliability(rows["score"], rows["positive"], "predicted probability of the positive class"),
            roc(rows["positive"], rows["score"], metrics.get("roc_auc")),
            pr(rows["positive"], rows["score"], metrics.get("pr_auc")),
        ]
    else:
        plots.append(reliability(rows["confidence"], hits, "confidence of the predicted class"))
    return kept(plots)
