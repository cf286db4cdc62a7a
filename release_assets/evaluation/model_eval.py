"""Evaluate a trained model on its test split: metrics, per-class and per-slice views, worst examples, latency."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from release_assets.datasets.build import read_jsonl
from release_assets.datasets.quality import describe
from release_assets.datasets.schemas import SLICE_FIELDS
from release_assets.evaluation import report
from release_assets.evaluation.behaviour import behaviour_summary
from release_assets.evaluation.latency import measure_latency
from release_assets.evaluation.metrics import (
    calibration_error,
    classification_metrics,
    mae,
    pr_auc,
    r2,
    rmse,
    roc_auc,
    row_slices,
    slice_hits,
    slice_mae,
)
from release_assets.evaluation.user_metrics import metrics_function, user_metrics
from release_assets.models.language import ABSTAIN_FILE
from release_assets.models.trainers import MODEL_KINDS, Predictor, predict_labels, task_of
from release_assets.plots import render
from release_assets.plots.model import report_plots

WORST_EXAMPLES = 10
LATENCY_SAMPLES = 100
CLASSIFIER_EXAMPLE_COLUMNS = ["id", "input", "expected", "got", "confidence"]
REGRESSION_EXAMPLE_COLUMNS = ["id", "input", "expected", "got", "abs_error"]


def evaluate(
    predictor: Predictor,
    test_rows: list[dict[str, Any]],
    metrics: str | None = None,
    rows_out: dict[str, list[Any]] | None = None,
) -> dict[str, Any]:
    """The model's figures on its test split, by its task (``task_of``): classifiers (multiclass and binary) get
    accuracy, macro-F1, per-class and confusion views, binary ones also ROC AUC, PR AUC and calibration error;
    regression models RMSE, MAE and R². A metric that cannot be measured on these rows (None) is left out.
    ``metrics``: a member's own metrics function (``package.module:function``, ``user_metrics.py``), whose
    figures join the summary's metrics (their names under ``user_metrics``). ``rows_out``, when given, receives
    the test rows as evaluated, for the report's plots (``plots/model.report_plots``): ``expected``, ``predicted``,
    and for classifiers ``confidence``, for binary ones ``positive`` and ``score``."""

    task = task_of(predictor)
    if task not in ("multiclass", "binary", "regression"):
        raise ValueError(f"cannot evaluate a model of task {task!r}: expected multiclass, binary or regression")
    own = (metrics, metrics_function(metrics)) if metrics else None  # imported before any prediction: fails fast
    if task == "regression":
        return _evaluate_regression(predictor, test_rows, own, rows_out)
    return _evaluate_classifier(predictor, test_rows, task, own, rows_out)


# A member's own metrics function, by the reference its manifest entry gives it.
OwnMetrics = tuple[str, Callable[..., Any]] | None


def _add_own_metrics(summary: dict[str, Any], own: OwnMetrics, y_true: Any, y_pred: Any, y_score: Any) -> None:
    """The member's own figures into the summary's metrics; none on an empty test split (nothing to measure)."""
    if own is None:
        return
    figures = {}
    if len(y_true):
        ref, function = own
        figures = user_metrics(ref, function, np.asarray(y_true), np.asarray(y_pred), y_score, summary["metrics"])
    summary["metrics"].update(figures)
    summary["user_metrics"] = sorted(figures)


def _evaluate_classifier(
    predictor: Predictor,
    test_rows: list[dict[str, Any]],
    task: str,
    own: OwnMetrics = None,
    rows_out: dict[str, list[Any]] | None = None,
) -> dict[str, Any]:
    predicted, proba = predict_labels(predictor, test_rows)
    expected = [r["label"] for r in test_rows]
    metrics = classification_metrics(expected, predicted, predictor.labels)
    slices = slice_hits(row_slices(test_rows, SLICE_FIELDS), [e == p for e, p in zip(expected, predicted, strict=True)])
    if not slices:  # tabular and image data have no slice attributes: the classes are the slices
        slices = {"class": {k: {"accuracy": v["recall"], "n": v["support"]} for k, v in metrics["per_class"].items()}}
    wrong = [
        {
            "id": row["id"],
            "input": describe(row),
            "expected": exp,
            "got": got,
            "confidence": float(p.max()),
        }
        for row, exp, got, p in zip(test_rows, expected, predicted, proba, strict=True)
        if exp != got
    ]
    wrong.sort(key=lambda e: -e["confidence"])
    ranking: dict[str, float | None] = {}
    if rows_out is not None:
        confidence = [float(p.max()) for p in proba] if len(test_rows) else []
        rows_out.update(expected=expected, predicted=list(predicted), confidence=confidence)
    if task == "binary":
        if len(predictor.labels) != 2:
            raise ValueError(f"a binary model has two labels (negative, positive), not {predictor.labels}")
        column = positive_column(predictor)
        positive = [e == predictor.labels[column] for e in expected]
        scores: list[float] = proba[:, column].tolist() if len(test_rows) else []
        ranking = {
            "roc_auc": roc_auc(positive, scores),
            "pr_auc": pr_auc(positive, scores),
            "calibration_error": calibration_error(positive, scores),
        }
        if rows_out is not None:
            rows_out.update(positive=positive, score=scores)
    latency = measure_latency(lambda row: predictor.predict_proba([row]), test_rows[:LATENCY_SAMPLES])
    summary = {
        "metrics": {
            "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"],
            "min_class_recall": metrics["min_class_recall"],
            **{k: v for k, v in ranking.items() if v is not None},
            **latency,
            "test_rows": len(test_rows),
        },
        "task": task,
        "labels": predictor.labels,
        "per_class": metrics["per_class"],
        "confusion": metrics["confusion"],
        "slices": slices,
        "examples": wrong[:WORST_EXAMPLES],
        "predictions": {row["id"]: got for row, got in zip(test_rows, predicted, strict=True)},
    }
    if own is not None:
        # The positive class's probability for a binary model, the whole matrix (columns in label order) otherwise.
        score = proba[:, positive_column(predictor)] if task == "binary" and len(test_rows) else proba
        _add_own_metrics(summary, own, expected, predicted, np.asarray(score, dtype=float))
    return summary


def positive_column(predictor: Any) -> int:
    """Which of a binary model's two probability columns is its positive class: the one it declares (a table's
    `positive:`), else the second."""
    declared = getattr(predictor, "positive", None)
    return predictor.labels.index(declared) if declared in predictor.labels else 1


def _evaluate_regression(
    predictor: Any,
    test_rows: list[dict[str, Any]],
    own: OwnMetrics = None,
    rows_out: dict[str, list[Any]] | None = None,
) -> dict[str, Any]:
    """Errors in the target's unit (overall, and MAE per slice value when the rows name slice columns), the rows
    with the largest absolute errors, and single-item latency of ``predict_values``."""

    values = [float(v) for v in predictor.predict_values(test_rows)] if test_rows else []
    expected = [float(r["label"]) for r in test_rows]
    errors = [abs(e - v) for e, v in zip(expected, values, strict=True)]
    if rows_out is not None:
        rows_out.update(expected=expected, predicted=values)
    worst = [
        {"id": row["id"], "input": describe(row), "expected": exp, "got": got, "abs_error": err}
        for row, exp, got, err in zip(test_rows, expected, values, errors, strict=True)
    ]
    worst.sort(key=lambda e: -e["abs_error"])
    errors_of = {"rmse": rmse(expected, values), "mae": mae(expected, values), "r2": r2(expected, values)}
    latency = measure_latency(lambda row: predictor.predict_values([row]), test_rows[:LATENCY_SAMPLES])
    summary = {
        "metrics": {
            **{k: v for k, v in errors_of.items() if v is not None},
            **latency,
            "test_rows": len(test_rows),
        },
        "task": "regression",
        "labels": [],
        "slices": slice_mae(row_slices(test_rows, SLICE_FIELDS), errors),
        "examples": worst[:WORST_EXAMPLES],
        "predictions": {row["id"]: got for row, got in zip(test_rows, values, strict=True)},
    }
    _add_own_metrics(summary, own, expected, values, None)
    return summary


def abstain_summary(predictor: Predictor, model_dir: Path, test_rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The abstain threshold the trainer chose on the validation split, and what it does on the test split: the
    share of cases a chain would act on (confidence at or above it) and how accurate those are. None when the
    model recorded no threshold."""

    path = model_dir / ABSTAIN_FILE
    if not path.exists():
        return None
    chosen = json.loads(path.read_text())
    threshold = chosen.get("threshold")
    if threshold is None:
        return None
    predicted, proba = predict_labels(predictor, test_rows)
    answered = [
        got == row["label"] for row, got, p in zip(test_rows, predicted, proba, strict=True) if p.max() >= threshold
    ]
    return {
        "threshold": threshold,
        "val": chosen,
        "test": {
            "answered_share": len(answered) / len(test_rows) if test_rows else None,
            "answered_accuracy": sum(answered) / len(answered) if answered else None,
            "rows": len(test_rows),
        },
    }


def _abstain_markdown(abstain: dict[str, Any]) -> str:
    val, test = abstain["val"], abstain["test"]
    cases = val.get("cases") or 0
    table = report.markdown_table(
        ["split", "rows", "answered share", "answered accuracy"],
        [
            ["val", cases, val.get("answered", 0) / cases if cases else "", val.get("answered_accuracy")],
            ["test", test["rows"], test["answered_share"], test["answered_accuracy"]],
        ],
    )
    return (
        f"Threshold {abstain['threshold']:.4g}: the lowest confidence at which the answered validation cases reach "
        f"{val.get('target')} accuracy{'' if val.get('reached') else ' (not reached: only certain cases answered)'}. "
        "Chains with `min_confidence: model` ask instead of acting below it.\n\n" + table
    )


def write_report(summary: dict[str, Any], out_dir: Path, title: str) -> None:
    """``report.json`` for machines, ``report.md`` for people; the summary returned to Dagster stays small."""
    (out_dir / "report.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    m = summary["metrics"]
    parts = [f"# {title}", report.markdown_table(["metric", "value"], [[k, v] for k, v in m.items()])]
    if summary.get("task") == "regression":
        parts += [
            "## Slices",
            report.slice_errors_markdown(summary["slices"]) if summary["slices"] else "No slice columns.",
            "## Worst examples",
            report.examples_markdown(summary["examples"], REGRESSION_EXAMPLE_COLUMNS),
        ]
        (out_dir / "report.md").write_text("\n\n".join(parts) + "\n")
        return
    parts += [
        "## Per class",
        report.per_class_markdown(summary["per_class"]),
        "## Confusion matrix",
        report.confusion_markdown(summary["labels"], summary["confusion"]),
        "## Slices",
        report.slices_markdown(summary["slices"]),
        *(
            [
                "## Behavioural test failures",
                report.examples_markdown(
                    summary["behaviour_examples"], ["test", "original", "perturbed", "before", "after"]
                ),
            ]
            if summary.get("behaviour_examples")
            else []
        ),
        *(["## Abstain threshold", _abstain_markdown(summary["abstain"])] if summary.get("abstain") else []),
        "## Worst examples",
        report.examples_markdown(summary["examples"], CLASSIFIER_EXAMPLE_COLUMNS),
    ]
    (out_dir / "report.md").write_text("\n\n".join(parts) + "\n")


def build_model_report(
    kind: str,
    model_dir: Path,
    split_dir: Path,
    out_dir: Path,
    title: str,
    mft_cases: list[dict[str, str]] | None = None,
    metrics: str | None = None,
) -> dict[str, Any]:
    """``metrics``: the member's own metrics function (its manifest entry's ``metrics:``), if it names one."""

    predictor = MODEL_KINDS[kind].load(model_dir)
    test_rows = read_jsonl(split_dir / "test.jsonl")
    evaluated: dict[str, list[Any]] = {}
    summary = evaluate(predictor, test_rows, metrics, evaluated)
    if kind == "text_classifier":

        def predict(texts: list[str]) -> list[str]:
            return predict_labels(predictor, [{"text": t} for t in texts])[0]

        behaviour = behaviour_summary(predict, [r["text"] for r in test_rows], mft_cases or [], seed=0)
        summary["metrics"].update({k: v for k, v in behaviour["metrics"].items() if v is not None})
        summary["behaviour_examples"] = behaviour["examples"]
        abstain = abstain_summary(predictor, model_dir, test_rows)
        if abstain is not None:
            summary["abstain"] = abstain
            figures = {
                "abstain_threshold": abstain["threshold"],
                "answered_share": abstain["test"]["answered_share"],
                "answered_accuracy": abstain["test"]["answered_accuracy"],
            }
            # A model that answers no test case has no answered accuracy: leave the figure out (its gates then
            # hold the release) rather than fail the report on a missing number.
            summary["metrics"].update({k: v for k, v in figures.items() if v is not None})
    write_report(summary, out_dir, title)
    # Evidence beside the report (plots/<name>.png, linked from report.md): drawn once here, shown by the asset's
    # metadata; a report is evidence, so its plots never enter a release version. Without matplotlib none are drawn.
    render.append_links(out_dir / "report.md", render.write(report_plots(summary, evaluated), out_dir))
    del summary["predictions"]  # in report.json; the reference handed downstream stays small
    return summary
