"""Similarity thresholds calibrated on the labelled set (data/judge/labelled.jsonl): chosen on the training half only,
reported on the held-out half, and a table of which check catches which kind of wrong reply."""

from __future__ import annotations

import json

import numpy as np
import pytest

from release_assets.evaluation.similarity_calibration import (
    best_threshold,
    calibrate,
    calibration_table,
    numbers_check,
    scored_rows,
    token_f1_check,
)
from release_assets.models.embedding import OnnxSentenceEmbedder
from release_assets_tests.conftest import REPO

ROWS = [json.loads(line) for line in (REPO / "data" / "judge" / "labelled.jsonl").read_text().splitlines()]


def test_best_threshold_separates_where_it_can_and_takes_the_middle_of_a_tie():
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    labels = np.array([False, False, False, True, True, True])
    threshold, balanced = best_threshold(scores, labels)
    assert balanced == 1.0 and threshold == pytest.approx(0.5)  # the middle between the two sides' replies
    # Mostly failing labels: plain accuracy would fail everything; balanced accuracy keeps the passes in view.
    threshold, balanced = best_threshold(np.array([0.1, 0.2, 0.3, 0.4, 0.9]), np.array([0, 0, 0, 0, 1], dtype=bool))
    assert balanced == 1.0 and 0.4 < threshold < 0.9


def test_each_group_is_scored_against_its_first_faithful_reply():
    scored, without = scored_rows(ROWS)
    groups_with_reference = {r["group"] for r in ROWS if r["kind"] == "faithful"}
    assert without == sum(1 for r in ROWS if r["group"] not in groups_with_reference)
    assert len(scored) == len(ROWS) - len(groups_with_reference) - without
    k08 = {r["id"]: r for r in scored if r["group"] == "K08"}
    assert "K08-1" not in k08 and k08["K08-6"]["reference"] == next(r["reply"] for r in ROWS if r["id"] == "K08-1")


def test_calibration_on_the_labelled_set_shows_what_similarity_misses(embedding_model_dir):
    embedder = OnnxSentenceEmbedder(embedding_model_dir)
    results = {
        "semantic similarity": calibrate(ROWS, embedder.similarity),
        "token F1": calibrate(ROWS, token_f1_check),
        "numbers of the reference": calibrate(ROWS, numbers_check),
    }
    semantic = results["semantic similarity"]
    assert semantic["train_rows"] + semantic["held_out"]["rows"] == len(scored_rows(ROWS)[0])
    kinds = semantic["by_kind"]
    # A negated or one-number-off reply keeps the reference's words: it scores closer to it than a correct
    # paraphrase does, so no similarity threshold passes paraphrases and fails those.
    assert kinds["negation"]["median_score"] > kinds["paraphrase"]["median_score"]
    assert kinds["wrong_number"]["median_score"] > kinds["paraphrase"]["median_score"]
    assert semantic["train_balanced_accuracy"] <= 0.55
    # The number check catches most wrong numbers, and agrees with people better than chance on the held-out half.
    numbers = results["numbers of the reference"]
    assert numbers["by_kind"]["wrong_number"]["share"] >= 0.7 and numbers["held_out"]["kappa_ci"][0] > 0
    table = calibration_table(results)
    assert "| negation (fail) | 25 |" in table and "numbers of the reference" in table


def test_the_threshold_is_chosen_on_the_training_half_only():
    flipped = [
        {**r, "verdicts": {**r["verdicts"], "factual_consistency": "fail"}} if r["split"] == "heldout" else r
        for r in ROWS
    ]
    assert calibrate(flipped, token_f1_check)["threshold"] == calibrate(ROWS, token_f1_check)["threshold"]
    with pytest.raises(ValueError, match="both halves"):
        calibrate([r for r in ROWS if r["split"] == "heldout"], token_f1_check)
