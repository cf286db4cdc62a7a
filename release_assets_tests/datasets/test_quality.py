from release_assets.datasets.quality import (
    duplicate_rows,
    duplicates_verdict,
    label_coverage,
    label_coverage_verdict,
    leakage,
    leakage_verdict,
    normalise_text,
)


def _msg(i: int, text: str, label: str = "refund") -> dict:
    return {"id": f"m{i}", "text": text, "label": label, "group": f"g{i}", "channel": "chat"}


def _iris(i: int, features: list[float], label: str = "setosa") -> dict:
    return {"id": f"iris-{i}", "features": features, "label": label, "group": str(features)}


def test_normalised_text_ignores_case_punctuation_and_spacing():
    assert normalise_text("  Where is   my ORDER?!\n") == "where is my order"


def test_duplicates_ignore_id_and_group():
    rows = [_msg(1, "Refund please"), _msg(2, "Refund please"), _msg(3, "Where is it?", "order_status")]
    assert duplicate_rows(rows) == [["m1", "m2"]]
    v = duplicates_verdict("support", rows)
    assert v.status == "failed" and v.observed == 1.0
    assert v.examples[0]["id"] == "m1" and v.examples[0]["duplicates"] == ["m2"]
    assert "1 of 3 rows duplicate another row" in v.reason


def test_distinct_rows_pass_the_duplicate_gate():
    rows = [_msg(1, "Refund please"), _msg(2, "Refund please", "other"), _iris(3, [5.1, 3.5, 1.4, 0.2])]
    assert duplicates_verdict("support", rows).status == "passed"


def test_leakage_matches_normalised_text_pixels_and_features():
    train = [_msg(1, "Where is my order?"), _iris(2, [5.1, 3.5, 1.4, 0.2]), {"id": "d1", "pixels": [0] * 64}]
    test = [_msg(9, "where is  my ORDER"), _iris(8, [5.1, 3.5, 1.4, 0.2]), {"id": "d9", "pixels": [0] * 64}]
    assert leakage(train, test) == [
        ("m1", "m9", "same normalised text"),
        ("iris-2", "iris-8", "same features"),
        ("d1", "d9", "same pixels"),
    ]
    v = leakage_verdict("support", train, test)
    assert v.status == "failed" and v.observed == 3.0
    assert v.examples[0] == {
        "test_id": "m9",
        "train_id": "m1",
        "reason": "same normalised text",
        "input": "where is  my ORDER",
        "train_input": "Where is my order?",
    }
    assert leakage_verdict("support", train, test, max_leaked=3).status == "passed"


def test_no_leakage_passes():
    v = leakage_verdict("support", [_msg(1, "Where is my order?")], [_msg(2, "Where is my refund?")])
    assert v.status == "passed" and v.observed == 0.0 and not v.examples


def test_label_missing_from_test_fails_coverage():
    splits = {
        "train": [_msg(i, "x", lab) for i, lab in enumerate(["refund", "refund", "cancel_order", "cancel_order"])],
        "test": [_msg(10, "x", "refund"), _msg(11, "x", "refund")],
    }
    cov = label_coverage(splits, min_per_label=2)
    assert cov["missing"] == {"train": [], "test": ["cancel_order"]}
    assert cov["counts"]["test"] == {"cancel_order": 0, "refund": 2}
    v = label_coverage_verdict("support", splits, min_per_label=2)
    assert v.status == "failed"
    assert v.examples == [{"split": "test", "label": "cancel_order", "count": 0, "minimum": 2}]
    assert "'cancel_order' in test (0)" in v.reason


def test_label_coverage_below_minimum_and_expected_labels():
    splits = {"train": [_msg(1, "x", "refund"), _msg(2, "x", "refund")], "test": [_msg(3, "x", "refund")]}
    cov = label_coverage(splits, min_per_label=2, labels=["refund", "other"])
    assert cov["below_minimum"]["test"] == ["refund"]
    assert cov["missing"]["train"] == ["other"]
    ok = label_coverage_verdict("support", splits, min_per_label=1)
    assert ok.status == "passed"


def test_invalid_rows_detail_lists_the_first_rows_on_one_line():
    from release_assets.datasets.quality import invalid_rows_detail

    failures = [
        {
            "line": 4,
            "id": "m4",
            "field": "intent",
            "error": "Input should be 'refund', 'order_status', 'cancel_order' or 'other'",
        },
        {"line": 7, "id": "line 7", "field": "<json>", "error": "not valid JSON: Expecting value"},
        {"line": 9, "id": "m9", "field": "text", "error": "Field\nrequired"},
    ] + [{"line": n, "id": f"m{n}", "field": "text", "error": "Field required"} for n in range(10, 27)]
    # build_raw keeps the first 20 failures; the count covers all of them.
    text, table = invalid_rows_detail("data/support/messages.jsonl", failures, total=37)
    assert text == (
        "data/support/messages.jsonl line 4, field intent: Input should be 'refund', 'order_status', "
        "'cancel_order' or ...; line 7: not valid JSON: Expecting value; line 9, field text: Field required; "
        "and 34 more"
    )
    assert len(table) == 10
    assert table[1] == {
        "file": "data/support/messages.jsonl",
        "line": 7,
        "field": "<json>",
        "error": failures[1]["error"],
    }
    assert invalid_rows_detail("x.jsonl", failures[:1], total=1)[0].endswith("or ...")
    assert invalid_rows_detail("x.jsonl", [], total=0) == ("", [])
