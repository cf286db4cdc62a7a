"""Classification metrics and latency percentiles on cases small enough to compute by hand."""

from __future__ import annotations

import math

import pytest

from release_assets.evaluation.metrics import (
    accuracy,
    classification_metrics,
    confusion,
    per_class,
    percentiles_ms,
    slice_accuracy,
)

LABELS = ["a", "b", "c"]
EXPECTED = ["a", "a", "b", "b", "c"]
PREDICTED = ["a", "b", "b", "b", "a"]
# By hand:  a: tp 1 of 2 expected, 2 predicted -> P 1/2, R 1/2, F1 1/2
#           b: tp 2 of 2 expected, 3 predicted -> P 2/3, R 1,   F1 4/5
#           c: tp 0 of 1 expected, 0 predicted -> P 0,   R 0,   F1 0


def test_accuracy():
    assert accuracy(EXPECTED, PREDICTED) == pytest.approx(3 / 5)
    assert accuracy(["x"], ["x"]) == 1.0
    assert math.isnan(accuracy([], []))  # no evidence is not 0% or 100%
    with pytest.raises(ValueError):  # misaligned lists are a bug, not a lower score
        accuracy(["a", "b"], ["a"])


def test_per_class():
    out = per_class(EXPECTED, PREDICTED, LABELS)
    assert out["a"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert out["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert out["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert list(out) == LABELS


def test_confusion_rows_are_expected_and_columns_predicted():
    assert confusion(EXPECTED, PREDICTED, LABELS) == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    # A label outside the model's label set has no cell: it is dropped, not miscounted.
    assert confusion(["a", "zzz"], ["zzz", "a"], ["a"]) == [[0]]


def test_classification_metrics():
    m = classification_metrics(EXPECTED, PREDICTED, LABELS)
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert m["min_class_recall"] == 0.0
    assert m["n"] == 5
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert m["per_class"]["b"]["f1"] == pytest.approx(0.8)


def test_classes_absent_from_the_test_set_do_not_enter_macro_f1_or_min_recall():
    # c is never expected nor predicted, d is predicted but never expected: both have support 0.
    m = classification_metrics(["a", "a", "b"], ["a", "d", "b"], ["a", "b", "c", "d"])
    assert math.isnan(m["per_class"]["c"]["recall"]) and m["per_class"]["c"]["f1"] == 0.0
    assert m["per_class"]["d"]["precision"] == 0.0 and math.isnan(m["per_class"]["d"]["recall"])
    # Only a (P 1, R 1/2, F1 2/3) and b (F1 1) count; an absent class's F1 of 0 would drag this to 5/12.
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert m["min_class_recall"] == 0.5
    assert m["confusion"][0] == [1, 0, 0, 1]


def test_classification_metrics_on_no_rows_are_nan():
    m = classification_metrics([], [], ["a"])
    assert m["n"] == 0
    assert all(math.isnan(m[k]) for k in ("accuracy", "macro_f1", "min_class_recall"))


def test_slice_accuracy():
    rows = [
        {"label": "a", "channel": "chat", "length": 3},
        {"label": "b", "channel": "chat", "length": 3},
        {"label": "a", "channel": "email", "length": 12},
        {"label": "b"},  # no slice attributes: counted in no slice
    ]
    predicted = ["a", "a", "a", "b"]
    out = slice_accuracy(rows, predicted, ["channel", "length", "register"])
    assert out == {
        "channel": {"chat": {"accuracy": 0.5, "n": 2}, "email": {"accuracy": 1.0, "n": 1}},
        "length": {"12": {"accuracy": 1.0, "n": 1}, "3": {"accuracy": 0.5, "n": 2}},  # values as sorted strings
    }
    assert "register" not in out  # a field no row has is left out, not reported empty


def test_percentiles_ms_converts_seconds_and_interpolates():
    out = percentiles_ms([0.005, 0.001, 0.004, 0.002, 0.003])
    assert out == pytest.approx({"p50_ms": 3.0, "p95_ms": 4.8})  # 95th of 1..5 ms: 4 + 0.8 * (5 - 4)
