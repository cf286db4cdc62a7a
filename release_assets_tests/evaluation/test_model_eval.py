"""``evaluate`` with a fake predictor whose probabilities are chosen per row, so every figure is known."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from release_assets.evaluation import model_eval
from release_assets.evaluation.model_eval import evaluate


class TableIntents:
    """Answers a fixed probability row per text (like ``fakes.KeywordIntents``, with chosen confidences)."""

    labels: ClassVar[list[str]] = ["cancel", "refund", "status"]
    table: ClassVar[dict[str, list[float]]] = {
        "refund please": [0.1, 0.8, 0.1],  # right
        "where is it": [0.1, 0.1, 0.8],  # right
        "stop the order": [0.6, 0.3, 0.1],  # wrong (refund expected), confidence 0.6
        "money back": [0.1, 0.2, 0.7],  # wrong (refund expected), confidence 0.7
        "cancel now": [0.5, 0.05, 0.45],  # wrong (status expected), confidence 0.5
    }

    def predict_proba(self, rows):
        return np.asarray([self.table[r["text"]] for r in rows])


ROWS = [
    {"id": "r1", "text": "refund please", "label": "refund", "channel": "chat"},
    {"id": "r2", "text": "where is it", "label": "status", "channel": "email"},
    {"id": "r3", "text": "stop the order", "label": "refund", "channel": "chat"},
    {"id": "r4", "text": "money back", "label": "refund", "channel": "email"},
    {"id": "r5", "text": "cancel now", "label": "status", "channel": "chat"},
]


@pytest.fixture(scope="module")
def summary():
    return evaluate(TableIntents(), ROWS)


def test_metrics(summary):
    m = summary["metrics"]
    assert m["accuracy"] == pytest.approx(2 / 5)
    assert m["test_rows"] == 5
    # cancel: never expected (absent). refund: 1 of 3 right, P 1/1. status: 1 of 2 right, P 1/2.
    assert m["min_class_recall"] == pytest.approx(1 / 3)
    assert m["macro_f1"] == pytest.approx((0.5 + 0.5) / 2)
    assert m["p50_ms"] >= 0 and m["p95_ms"] >= m["p50_ms"]
    assert summary["labels"] == TableIntents.labels
    assert summary["confusion"] == [[0, 0, 0], [1, 1, 1], [1, 0, 1]]
    assert summary["per_class"]["refund"]["support"] == 3


def test_slices_use_row_attributes(summary):
    assert summary["slices"] == {
        "channel": {"chat": {"accuracy": pytest.approx(1 / 3), "n": 3}, "email": {"accuracy": 0.5, "n": 2}}
    }


def test_rows_without_slice_attributes_are_sliced_by_class():
    rows = [{k: v for k, v in r.items() if k != "channel"} for r in ROWS]
    slices = evaluate(TableIntents(), rows)["slices"]
    assert list(slices) == ["class"]
    assert slices["class"]["refund"] == {"accuracy": pytest.approx(1 / 3), "n": 3}


def test_worst_examples_are_the_wrong_ones_most_confident_first(summary):
    examples = summary["examples"]
    assert [e["id"] for e in examples] == ["r4", "r3", "r5"]
    assert [e["confidence"] for e in examples] == pytest.approx([0.7, 0.6, 0.5])
    assert examples[0] == {
        "id": "r4",
        "input": "money back",
        "expected": "refund",
        "got": "status",
        "confidence": pytest.approx(0.7),
    }


def test_worst_examples_are_capped(monkeypatch):
    monkeypatch.setattr(model_eval, "WORST_EXAMPLES", 2)
    assert [e["id"] for e in evaluate(TableIntents(), ROWS)["examples"]] == ["r4", "r3"]


def test_predictions_by_row_id(summary):
    assert summary["predictions"] == {"r1": "refund", "r2": "status", "r3": "cancel", "r4": "status", "r5": "cancel"}
