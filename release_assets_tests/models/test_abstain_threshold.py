"""The abstain threshold: chosen by the text trainer on its validation split, frozen into the model folder, read
back by the predictor (and so by a chain's classifier binding), and reported on the test split."""

from __future__ import annotations

import json

import pytest

from bench.support.project import TINY_PARAMS
from release_assets.evaluation.model_eval import abstain_summary
from release_assets.models.language import ABSTAIN_FILE, TextPredictor, choose_abstain_threshold
from release_assets.models.trainers import MODEL_KINDS, predict_labels
from release_assets_tests.evaluation.test_model_eval import ROWS, TableIntents
from release_assets_tests.models.test_trainers import text_rows

# Six validation cases, most confident first: right, right, wrong, right, wrong, wrong.
CONFIDENCES = [0.95, 0.9, 0.8, 0.7, 0.6, 0.5]
CORRECT = [True, True, False, True, False, False]


@pytest.mark.parametrize(
    ("target", "threshold", "answered"),
    [
        (0.5, 0.0, 6),  # 3/6 already: answer everything
        (0.6, 0.6, 5),  # at 0.6: 3 of the 5 answered are right
        (0.75, 0.7, 4),  # at 0.7: 3 of the 4 answered are right; at 0.6: 3/5
        (0.9, 0.9, 2),  # at 0.8: 2/3; at 0.9: 2/2
        (1.0, 0.9, 2),
    ],
)
def test_the_lowest_confidence_whose_answered_cases_reach_the_target(target, threshold, answered):
    chosen = choose_abstain_threshold(CONFIDENCES, CORRECT, target)
    assert chosen["threshold"] == threshold
    assert chosen["answered"] == answered and chosen["reached"] is True
    assert chosen["answered_accuracy"] >= target
    assert chosen["accuracy"] == 0.5 and chosen["cases"] == 6


def test_equal_confidences_are_never_split():
    # At 0.8 both 0.8 cases are answered (1 of 2 right): the target 0.75 cannot be met by answering only one.
    chosen = choose_abstain_threshold([0.9, 0.8, 0.8], [True, True, False], 0.75)
    assert chosen["threshold"] == 0.9 and chosen["answered"] == 1


def test_an_unreachable_target_answers_only_the_certain_and_says_so():
    chosen = choose_abstain_threshold([0.9, 0.8], [False, True], 0.99)
    assert chosen["threshold"] == 1.0 and chosen["reached"] is False and chosen["answered"] == 0


def test_no_validation_cases_no_threshold():
    assert choose_abstain_threshold([], [], 0.9)["threshold"] is None


def _train(tmp_path, val_rows):
    kind = MODEL_KINDS["text_classifier"]
    params = kind.parse_params({**TINY_PARAMS["intent_model"], "epochs": 3, "batch_size": 8, "seed": 3})
    summary = kind.train(text_rows(), params, tmp_path, val_rows)
    return summary, TextPredictor(tmp_path)


def test_the_trainer_writes_the_threshold_chosen_on_its_validation_predictions(tmp_path):
    val = [
        {"text": t, "label": label}
        for label, t in [
            ("refund", "money back for my order please"),
            ("order_status", "is my parcel on its way"),
            ("cancel_order", "I want this order cancelled"),
            ("refund", "where is my refund"),
            ("order_status", "cancel tracking"),
        ]
    ]
    summary, predictor = _train(tmp_path, val)
    recorded = json.loads((tmp_path / ABSTAIN_FILE).read_text())
    assert recorded == summary["abstain"] and recorded["split"] == "val" and recorded["cases"] == len(val)
    # The same choice, made again from the saved model's own predictions on the validation rows.
    labels, proba = predict_labels(predictor, val)
    again = choose_abstain_threshold(
        [float(p.max()) for p in proba], [g == r["label"] for g, r in zip(labels, val, strict=True)], 0.8
    )
    assert predictor.abstain_threshold == pytest.approx(again["threshold"], abs=1e-6)
    assert recorded["answered"] == again["answered"]


def test_without_a_validation_split_no_threshold_is_recorded(tmp_path):
    summary, predictor = _train(tmp_path, None)
    assert summary["abstain"]["threshold"] is None and predictor.abstain_threshold is None


def test_the_model_report_shows_the_threshold_on_the_test_split(tmp_path):
    (tmp_path / ABSTAIN_FILE).write_text(json.dumps({"threshold": 0.65, "target": 0.8, "cases": 10, "answered": 7}))
    # TableIntents on ROWS: confidences 0.8 (right), 0.8 (right), 0.6, 0.7 (wrong), 0.5: three answered at 0.65.
    report = abstain_summary(TableIntents(), tmp_path, ROWS)
    assert report["threshold"] == 0.65
    assert report["test"] == {"answered_share": 3 / 5, "answered_accuracy": 2 / 3, "rows": 5}
    assert report["val"]["answered"] == 7


def test_no_threshold_file_no_report_section(tmp_path):
    assert abstain_summary(TableIntents(), tmp_path, ROWS) is None
