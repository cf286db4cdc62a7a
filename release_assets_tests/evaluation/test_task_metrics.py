"""Binary classification and regression: the metrics on cases small enough to compute by hand, and ``evaluate``,
the report and the asset metadata with fake predictors of each task."""

from __future__ import annotations

import json
import math
from typing import ClassVar

import numpy as np
import pytest

from release_assets.artifacts import ArtifactRef
from release_assets.datasets.quality import describe
from release_assets.evaluation import model_eval
from release_assets.evaluation.assets import _report_metadata
from release_assets.evaluation.metrics import (
    calibration_error,
    mae,
    pr_auc,
    r2,
    rmse,
    roc_auc,
    row_slices,
    slice_hits,
    slice_mae,
)
from release_assets.evaluation.model_eval import build_model_report, evaluate, write_report
from release_assets.models.trainers import MODEL_KINDS
from release_assets.promotion.slices import slice_gap_verdict

# -- binary metrics ------------------------------------------------------------------------------------------------


def test_roc_auc_of_perfect_reversed_and_uninformative_rankers():
    y = [0, 0, 1, 1]
    assert roc_auc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert roc_auc(y, [0.5, 0.5, 0.5, 0.5]) == 0.5  # ties count half


def test_roc_auc_by_hand():
    # Pairs (positive, negative): 0.35 > 0.1 yes, 0.35 > 0.4 no, 0.8 > both: 3 of 4.
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # A tie between a positive and a negative counts half: (1 + 0.5) / 2.
    assert roc_auc([True, False, True], [0.5, 0.5, 0.9]) == pytest.approx((1 + 0.5) / 2)


def test_pr_auc_by_hand():
    # Highest first: 0.8 (+) P 1 R 1/2; 0.4 (-) adds no recall; 0.35 (+) P 2/3 R 1; 0.1 (-) adds no recall.
    assert pr_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert pr_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    # Tied scores form one threshold: at 0.5, 1 of 2 predicted is positive (R 1/2), at 0.2 P 2/3 R 1.
    assert pr_auc([1, 0, 1], [0.5, 0.5, 0.2]) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)


def test_ranking_metrics_agree_with_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    scores = np.round(rng.random(200) * 0.6 + y * 0.3, 2)  # rounded: plenty of ties
    assert roc_auc(y.tolist(), scores.tolist()) == pytest.approx(metrics.roc_auc_score(y, scores))
    assert pr_auc(y.tolist(), scores.tolist()) == pytest.approx(metrics.average_precision_score(y, scores))


def test_calibration_error_of_a_calibrated_set_is_zero():
    # Each bin's mean probability equals its share of positives: 0.25 on four rows with one positive, 0 and 1.
    y = [1, 0, 0, 0, 0, 1]
    p = [0.25, 0.25, 0.25, 0.25, 0.0, 1.0]
    assert calibration_error(y, p) == pytest.approx(0.0)


def test_calibration_error_of_an_overconfident_set():
    # One bin (0.9-1.0) holding every row: mean probability 0.9, half of them positive.
    assert calibration_error([1, 1, 0, 0], [0.9, 0.9, 0.9, 0.9]) == pytest.approx(0.4)
    # Two bins of two rows: |0.5 - 0.9| and |0 - 0.2|, each weighted 1/2.
    assert calibration_error([1, 0, 0, 0], [0.9, 0.9, 0.2, 0.2]) == pytest.approx(0.5 * 0.4 + 0.5 * 0.2)
    # A probability of exactly 1 falls in the last bin, with 0.95: mean 0.975, all positive.
    assert calibration_error([1, 1, 0], [1.0, 0.95, 0.0]) == pytest.approx(2 / 3 * 0.025)


@pytest.mark.parametrize("y", [[1, 1, 1], [0, 0, 0], []])
def test_single_class_or_empty_test_sets_measure_nothing(y):
    scores = [0.2, 0.7, 0.9][: len(y)]
    assert roc_auc(y, scores) is None
    assert pr_auc(y, scores) is None
    assert calibration_error(y, scores) is None


def test_misaligned_binary_inputs_are_an_error():
    with pytest.raises(ValueError):
        roc_auc([0, 1], [0.5])


# -- regression metrics --------------------------------------------------------------------------------------------

TARGETS = [1.0, 2.0, 3.0, 4.0]
VALUES = [1.5, 2.0, 3.0, 3.5]
# errors 0.5, 0, 0, 0.5: MAE 0.25, MSE 0.125; the targets' squares about their mean 2.5 sum to 5, so R² 1 - 0.5/5.


def test_rmse_mae_r2_by_hand():
    assert mae(TARGETS, VALUES) == pytest.approx(0.25)
    assert rmse(TARGETS, VALUES) == pytest.approx(math.sqrt(0.125))
    assert r2(TARGETS, VALUES) == pytest.approx(0.9)
    # Worse than predicting the mean: R² below zero. Errors 0, 1, 1, 2: MSE 1.5, so 1 - 6/5.
    assert r2(TARGETS, [1.0, 3.0, 2.0, 6.0]) == pytest.approx(-0.2)
    assert rmse(TARGETS, TARGETS) == 0.0 and r2(TARGETS, TARGETS) == 1.0


def test_r2_of_a_constant_target_is_none():
    assert r2([2.0, 2.0, 2.0], [2.0, 2.5, 1.0]) is None
    assert r2([], []) is None and rmse([], []) is None and mae([], []) is None
    with pytest.raises(ValueError):
        mae([1.0], [1.0, 2.0])


# -- slices --------------------------------------------------------------------------------------------------------


def test_row_slices_read_the_slice_mapping_else_the_named_fields():
    rows = [{"slice": {"plan": "pro", "region": 3}}, {"channel": "chat", "label": "a"}, {"label": "b"}]
    assert row_slices(rows, ("channel",)) == [{"plan": "pro", "region": "3"}, {"channel": "chat"}, {}]


def test_slice_hits_and_slice_mae():
    slices = [{"plan": "pro"}, {"plan": "free"}, {"plan": "pro"}, {}]
    assert slice_hits(slices, [True, False, False, True]) == {
        "plan": {"free": {"accuracy": 0.0, "n": 1}, "pro": {"accuracy": 0.5, "n": 2}}
    }
    assert slice_mae(slices, [1.0, 2.0, 3.0, 9.0]) == {
        "plan": {"free": {"mae": 2.0, "n": 1}, "pro": {"mae": 2.0, "n": 2}}
    }
    assert slice_hits([{}, {}], [True, False]) == {}


def test_describe_shows_a_tables_columns_by_name():
    row = {"id": "r1", "features": {"age": 41, "income": 52000.5, "plan": "pro", "trial": None}}
    assert describe(row) == "age=41, income=52000.5, plan=pro, trial=None"
    assert describe({"features": [5.1, 3.5]}) == "5.1, 3.5"


# -- evaluate: binary ----------------------------------------------------------------------------------------------


class ChurnScores:
    """A binary classifier answering a chosen probability of ``yes`` (the positive class) per row id."""

    task = "binary"
    labels: ClassVar[list[str]] = ["no", "yes"]

    def __init__(self, positive: dict[str, float]):
        self.positive = positive

    def predict_proba(self, rows):
        p = np.asarray([self.positive[r["id"]] for r in rows])
        return np.column_stack([1 - p, p])


def _table_row(i, label, plan, **features):
    return {
        "id": f"r{i}",
        "label": label,
        "group": f"g{i}",
        "features": {"plan": plan, **features},
        "slice": {"plan": plan},
    }


BINARY_ROWS = [
    _table_row(1, "yes", "pro", tenure=2),
    _table_row(2, "yes", "free", tenure=1),
    _table_row(3, "no", "pro", tenure=30),
    _table_row(4, "no", "free", tenure=12),
    _table_row(5, "no", "free", tenure=8),
]
# yes-probabilities: r1 0.9 (right), r2 0.45 (wrong: said no), r3 0.2 (right), r4 0.6 (wrong: said yes), r5 0.1.
BINARY_SCORES = {"r1": 0.9, "r2": 0.45, "r3": 0.2, "r4": 0.6, "r5": 0.1}


@pytest.fixture(scope="module")
def binary():
    return evaluate(ChurnScores(BINARY_SCORES), BINARY_ROWS)


def test_binary_has_the_classification_metrics_and_ranking_and_calibration(binary):
    m = binary["metrics"]
    assert m["accuracy"] == pytest.approx(3 / 5)
    # yes: 1 of 2 right, precision 1/2; no: 2 of 3 right, precision 2/3.
    assert m["min_class_recall"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx((0.5 + 2 / 3) / 2)
    # Positives 0.9 and 0.45 against negatives 0.6, 0.2, 0.1: 3 + 2 of 6 pairs ranked right.
    assert m["roc_auc"] == pytest.approx(5 / 6)
    # Highest first: 0.9 (+) P 1 R 1/2; 0.6 (-); 0.45 (+) P 2/3 R 1.
    assert m["pr_auc"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    # Bins: 0.9 (1 positive), 0.6 (0), 0.45 (1), 0.2 (0), 0.1 (0): each a bin of one row.
    assert m["calibration_error"] == pytest.approx((0.1 + 0.6 + 0.55 + 0.2 + 0.1) / 5)
    assert m["test_rows"] == 5 and m["p95_ms"] >= m["p50_ms"] >= 0
    assert binary["task"] == "binary"
    assert binary["labels"] == ["no", "yes"]
    assert binary["confusion"] == [[2, 1], [1, 1]]
    assert binary["per_class"]["yes"]["support"] == 2
    assert binary["predictions"] == {"r1": "yes", "r2": "no", "r3": "no", "r4": "yes", "r5": "no"}


def test_binary_slices_come_from_the_rows_slice_columns_and_feed_the_slice_gap_gate(binary):
    assert binary["slices"] == {
        "plan": {"free": {"accuracy": pytest.approx(1 / 3), "n": 3}, "pro": {"accuracy": 1.0, "n": 2}}
    }
    verdict = slice_gap_verdict("churn", binary["metrics"]["accuracy"], binary["slices"], 0.1, min_n=3)
    assert verdict.status == "failed" and verdict.observed == pytest.approx(3 / 5 - 1 / 3)


def test_binary_worst_examples_show_the_table_row(binary):
    assert [e["id"] for e in binary["examples"]] == ["r4", "r2"]
    assert binary["examples"][0] == {
        "id": "r4",
        "input": "plan=free, tenure=12",
        "expected": "no",
        "got": "yes",
        "confidence": pytest.approx(0.6),
    }


def test_a_single_class_binary_test_set_reports_no_ranking_or_calibration():
    rows = [r for r in BINARY_ROWS if r["label"] == "no"]
    m = evaluate(ChurnScores(BINARY_SCORES), rows)["metrics"]
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert not {"roc_auc", "pr_auc", "calibration_error"} & set(m)


def test_a_binary_model_needs_two_labels():
    model = ChurnScores(BINARY_SCORES)
    model.labels = ["no", "yes", "maybe"]
    with pytest.raises(ValueError, match="two labels"):
        evaluate(model, BINARY_ROWS)


def test_multiclass_rows_with_a_slice_mapping_are_sliced_by_it():
    class Multi(ChurnScores):
        task = "multiclass"

    summary = evaluate(Multi(BINARY_SCORES), BINARY_ROWS)
    assert list(summary["slices"]) == ["plan"]
    assert "task" in summary and not {"roc_auc", "pr_auc", "calibration_error"} & set(summary["metrics"])


# -- evaluate: regression ------------------------------------------------------------------------------------------


class PriceModel:
    """A regression model answering a chosen value per row id."""

    task = "regression"
    labels: ClassVar[list[str]] = []

    def __init__(self, values: dict[str, float]):
        self.values = values

    def predict_values(self, rows):
        return np.asarray([self.values[r["id"]] for r in rows], dtype=float)


def _price_row(i, target, region):
    return {
        "id": f"h{i}",
        "label": target,
        "group": f"g{i}",
        "features": {"rooms": i + 1, "region": region},
        "slice": {"region": region},
    }


REGRESSION_ROWS = [
    _price_row(i, t, r) for i, (t, r) in enumerate(zip(TARGETS, ["north", "south", "north", "south"], strict=True))
]
REGRESSION_VALUES = {"h0": 1.5, "h1": 2.0, "h2": 3.0, "h3": 3.5}  # VALUES: errors 0.5, 0, 0, 0.5


@pytest.fixture(scope="module")
def regression():
    return evaluate(PriceModel(REGRESSION_VALUES), REGRESSION_ROWS)


def test_regression_metrics(regression):
    m = regression["metrics"]
    assert m["mae"] == pytest.approx(0.25)
    assert m["rmse"] == pytest.approx(math.sqrt(0.125))
    assert m["r2"] == pytest.approx(0.9)
    assert m["test_rows"] == 4 and m["p95_ms"] >= m["p50_ms"] >= 0
    assert not {"accuracy", "macro_f1", "min_class_recall", "roc_auc"} & set(m)
    assert regression["task"] == "regression" and regression["labels"] == []
    assert "confusion" not in regression and "per_class" not in regression
    assert regression["predictions"] == {"h0": 1.5, "h1": 2.0, "h2": 3.0, "h3": 3.5}


def test_regression_slices_are_mae_per_slice_value(regression):
    # north: h0 (0.5) and h2 (0); south: h1 (0) and h3 (0.5).
    assert regression["slices"] == {"region": {"north": {"mae": 0.25, "n": 2}, "south": {"mae": 0.25, "n": 2}}}


def test_regression_worst_examples_are_the_largest_errors(regression):
    examples = regression["examples"]
    assert [e["abs_error"] for e in examples] == [0.5, 0.5, 0.0, 0.0]
    assert examples[0] == {"id": "h0", "input": "rooms=1, region=north", "expected": 1.0, "got": 1.5, "abs_error": 0.5}


def test_regression_of_a_constant_target_leaves_r2_out_and_rows_without_slices_have_none():
    rows = [{k: v for k, v in r.items() if k != "slice"} | {"label": 2.0} for r in REGRESSION_ROWS]
    summary = evaluate(PriceModel(REGRESSION_VALUES), rows)
    assert "r2" not in summary["metrics"] and summary["metrics"]["mae"] == pytest.approx((0.5 + 0 + 1 + 1.5) / 4)
    assert summary["slices"] == {}


def test_worst_regression_examples_are_capped(monkeypatch):
    monkeypatch.setattr(model_eval, "WORST_EXAMPLES", 1)
    values = dict(REGRESSION_VALUES, h2=7.0)
    assert [e["id"] for e in evaluate(PriceModel(values), REGRESSION_ROWS)["examples"]] == ["h2"]


def test_a_task_nobody_evaluates_is_an_error():
    model = PriceModel(REGRESSION_VALUES)
    model.task = "ranking"
    with pytest.raises(ValueError, match="ranking"):
        evaluate(model, REGRESSION_ROWS)


# -- reports -------------------------------------------------------------------------------------------------------


def test_regression_report_md_has_metrics_slices_and_the_worst_example(tmp_path):
    values = dict(REGRESSION_VALUES, h2=7.25)  # h2 (target 3) missed by 4.25
    summary = evaluate(PriceModel(values), REGRESSION_ROWS)
    write_report(summary, tmp_path, "houses/price_model")
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# houses/price_model")
    assert "| rmse |" in md and "| r2 |" in md
    assert "| slice | value | mae | n |" in md and "| region | north |" in md
    assert "| h2 | rooms=3, region=north | 3 | 7.25 | 4.25 |" in md
    assert md.index("| h2 |") < md.index("| h0 |")  # worst first
    assert "Confusion" not in md and "Per class" not in md
    assert json.loads((tmp_path / "report.json").read_text())["examples"][0]["id"] == "h2"


def test_binary_report_md_lists_ranking_and_calibration(tmp_path, binary):
    write_report(binary, tmp_path, "churn")
    md = (tmp_path / "report.md").read_text()
    assert "| roc_auc | 0.8333 |" in md and "| calibration_error |" in md
    assert "## Confusion matrix" in md and "| plan | free |" in md


def _ref(summary):
    return ArtifactRef(
        release="r", member="m_report", kind="model_report", fingerprint="f", location="x", files={}, summary=summary
    )


def test_report_metadata_by_task(tmp_path, binary, regression):
    meta = _report_metadata(_ref(regression), tmp_path)
    assert set(meta) == {"slices", "worst_examples", "report"}
    assert "| region | north | 0.25 | 2 |" in meta["slices"].value
    assert "h0" in meta["worst_examples"].value
    assert set(_report_metadata(_ref(binary), tmp_path)) == {"confusion_matrix", "per_class", "slices", "report"}
    no_slices = {**regression, "slices": {}}
    assert set(_report_metadata(_ref(no_slices), tmp_path)) == {"worst_examples", "report"}


def test_build_model_report_for_a_regression_kind(tmp_path, monkeypatch):
    class Runtime:
        def load(self, model_dir, runtime=None):
            return PriceModel(REGRESSION_VALUES)

    monkeypatch.setitem(MODEL_KINDS, "fake_regression", Runtime())
    split, out = tmp_path / "split", tmp_path / "out"
    split.mkdir()
    out.mkdir()
    (split / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in REGRESSION_ROWS))
    summary = build_model_report("fake_regression", tmp_path / "model", split, out, "houses/price_model")
    assert summary["metrics"]["r2"] == pytest.approx(0.9)
    assert "predictions" not in summary  # kept in report.json only
    assert json.loads((out / "report.json").read_text())["predictions"]["h3"] == 3.5
    assert "| h0 | rooms=1, region=north |" in (out / "report.md").read_text()


def test_a_declared_positive_class_is_the_one_binary_metrics_score():
    import numpy as np

    from release_assets.evaluation.model_eval import evaluate

    class Declared:
        task, labels, positive = "binary", ["bad", "good"], "bad"

        def predict_proba(self, rows):
            return np.asarray([[r["p_bad"], 1 - r["p_bad"]] for r in rows])

    rows = [
        {"id": f"r{i}", "label": label, "features": {}, "p_bad": p}
        for i, (label, p) in enumerate([("bad", 0.9), ("bad", 0.8), ("good", 0.3), ("good", 0.1)])
    ]
    metrics = evaluate(Declared(), rows)["metrics"]
    assert metrics["roc_auc"] == 1.0  # scored on P(bad): a perfect ranker of the declared positive class
