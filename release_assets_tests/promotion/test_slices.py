from release_assets.promotion.slices import slice_gap_verdict

SLICES = {
    "channel": {"email": {"accuracy": 0.92, "n": 120}, "chat": {"accuracy": 0.88, "n": 100}},
    "length": {"short": {"accuracy": 0.5, "n": 4}, "long": {"accuracy": 0.89, "n": 60}},
}


def test_slices_close_to_overall_pass():
    v = slice_gap_verdict("intent", 0.90, SLICES, max_gap=0.05)
    assert v.status == "passed"
    assert v.observed == 0.90 - 0.88
    assert "channel=chat" in v.reason and "1 slices under 10 rows not judged" in v.reason
    # every slice is listed, the tiny one too, judged ones first by gap
    assert [(e["field"], e["value"]) for e in v.examples][:2] == [("channel", "chat"), ("length", "long")]
    assert {e["value"]: e["judged"] for e in v.examples}["short"] is False


def test_a_slice_made_worse_fails():
    worse = {**SLICES, "channel": {**SLICES["channel"], "chat": {"accuracy": 0.70, "n": 100}}}
    v = slice_gap_verdict("intent", 0.90, worse, max_gap=0.05)
    assert v.status == "failed" and v.holds_release
    assert abs(v.observed - 0.20) < 1e-9
    assert v.examples[0] == {
        "field": "channel",
        "value": "chat",
        "accuracy": 0.70,
        "n": 100,
        "gap": v.observed,
        "judged": True,
    }


def test_no_slice_big_enough_is_inconclusive():
    v = slice_gap_verdict("intent", 0.9, {"length": {"short": {"accuracy": 0.0, "n": 3}}}, max_gap=0.05)
    assert v.status == "inconclusive" and "no slice has at least 10 rows" in v.reason
    assert slice_gap_verdict("intent", None, SLICES, max_gap=0.05).status == "inconclusive"
