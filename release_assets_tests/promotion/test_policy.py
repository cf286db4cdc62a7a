import math

from release_assets.manifest import Threshold, parse_manifest
from release_assets.promotion.policy import member_verdicts, release_decision, threshold_verdict


def test_min_and_max_bounds():
    assert threshold_verdict("m", "accuracy", 0.91, Threshold(min=0.9)).status == "passed"
    failed = threshold_verdict("m", "accuracy", 0.89, Threshold(min=0.9))
    assert failed.status == "failed"
    assert "accuracy = 0.89 violates the gate >= 0.9" in failed.reason
    assert threshold_verdict("m", "p95_ms", 30.0, Threshold(max=20)).status == "failed"
    assert threshold_verdict("m", "x", 0.5, Threshold(min=0.4, max=0.6)).status == "passed"


def test_unmeasured_metric_is_inconclusive_and_holds_the_release():
    for observed in (None, math.nan):
        v = threshold_verdict("m", "accuracy", observed, Threshold(min=0.9))
        assert v.status == "inconclusive"
        assert v.holds_release


def test_warn_gates_never_hold_a_release():
    v = threshold_verdict("m", "accuracy", 0.1, Threshold(min=0.9, severity="warn"))
    assert v.status == "failed"
    assert not v.holds_release
    ok, holding = release_decision([v])
    assert ok and not holding


def test_member_verdicts_follow_the_manifest():
    manifest = parse_manifest(
        {
            "name": "r",
            "members": {
                "d": {"kind": "sklearn_dataset", "name": "iris", "split": {"test": 0.3}},
                "m": {"kind": "tabular_classifier", "data": "d"},
            },
            "gates": {"m": {"accuracy": {"min": 0.9}, "macro_f1": {"min": 0.8}}},
        },
        "r.yaml",
    )
    verdicts = member_verdicts(manifest, "m", {"metrics": {"accuracy": 0.95, "macro_f1": 0.7}})
    assert [(v.gate, v.status) for v in verdicts] == [("accuracy", "passed"), ("macro_f1", "failed")]
    ok, holding = release_decision(verdicts)
    assert not ok and [v.gate for v in holding] == ["macro_f1"]
