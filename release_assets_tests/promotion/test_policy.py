import math

from release_assets.manifest import Threshold
from release_assets.promotion.policy import release_decision, threshold_verdict


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


def test_inconclusive_holds_unless_the_manifest_lets_it_pass_with_a_warning():
    hold = threshold_verdict("m", "regression", None, Threshold(min=-0.02))
    warn = threshold_verdict("m", "regression", None, Threshold(min=-0.02, on_inconclusive="warn"))
    assert hold.status == warn.status == "inconclusive"
    assert hold.holds_release and not warn.holds_release
    failed = threshold_verdict("m", "accuracy", 0.1, Threshold(min=0.9, on_inconclusive="warn"))
    assert failed.holds_release  # on_inconclusive never softens a real failure


def test_bounds_are_worded_one_way_everywhere():
    from release_assets.promotion.policy import bounds_text

    assert bounds_text({"min": 0.9, "max": None}) == ">= 0.9"
    assert bounds_text({"min": 0.4, "max": 0.6}) == ">= 0.4 and <= 0.6"
    assert bounds_text({}) == ""
