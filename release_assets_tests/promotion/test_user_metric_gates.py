"""Gates on a team's own metrics (#25): a model member naming a `metrics:` function may gate any name outside the
shared gate table, with any bound; the name is compared with its bound like any summary metric, and a name the
function did not return fails as not measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from release_assets.artifacts import ArtifactRef
from release_assets.manifest import ManifestError, parse_manifest
from release_assets.manifest.overrides import apply_overrides
from release_assets.promotion.checks import gate_checks
from release_assets.promotion.gates import MemberInputs, gate_role, member_verdicts
from release_assets.promotion.weakened import weakened_gates

METRICS = "team_metrics.metrics:score"
MANIFEST = {
    "name": "loans",
    "members": {
        "applications": {
            "kind": "table",
            "path": "loans.csv",
            "target": "defaulted",
            "task": "binary",
            "columns": {"income": {"dtype": "float"}, "defaulted": {"dtype": "int", "allowed": [0, 1]}},
            "split": {"test": 0.25},
        },
        "default_model": {
            "kind": "python_model",
            "data": "applications",
            "train": "your_models.train:fit_default_risk",
            "metrics": METRICS,
        },
    },
    "gates": {
        "default_model": {
            "accuracy": {"min": 0.6},
            "expected_loss": {"max": 1200.0},  # a cost in the team's currency: no [0, 1] range applies
            "approval_rate": {"min": 0.3, "max": 0.8},
        }
    },
}


def _manifest(**gates) -> dict:
    data = json.loads(json.dumps(MANIFEST))
    data["gates"]["default_model"].update(gates)
    return data


def _inputs(metrics: dict, user_metrics: list[str]) -> MemberInputs:
    summary = {"task": "binary", "metrics": metrics, "user_metrics": user_metrics}
    report = ArtifactRef(
        release="loans", member="default_model_report", kind="model_report", fingerprint="f", location="r", files={},
        summary=summary,
    )  # fmt: skip
    return MemberInputs(refs={"report": report}, store_root=Path("unused"))


def _verdicts(manifest, metrics: dict) -> dict:
    inputs = _inputs(metrics, sorted(set(metrics) - {"accuracy"}))
    return {v.gate: v for v in member_verdicts(manifest, "default_model", inputs)}


def test_own_metrics_are_gated_by_name_with_any_bound():
    manifest = parse_manifest(MANIFEST, "releases/loans.yaml")
    assert gate_role("python_model", "expected_loss", manifest.members["default_model"]) == "report"
    passing = _verdicts(manifest, {"accuracy": 0.7, "expected_loss": 950.0, "approval_rate": 0.5})
    assert {g: v.status for g, v in passing.items()} == dict.fromkeys(passing, "passed")
    assert passing["expected_loss"].reason == "expected_loss = 950 meets the gate <= 1200"

    failing = _verdicts(manifest, {"accuracy": 0.7, "expected_loss": 1500.0, "approval_rate": 0.9})
    assert failing["expected_loss"].status == "failed" and failing["expected_loss"].holds_release
    assert failing["expected_loss"].reason == "expected_loss = 1500 violates the gate <= 1200"
    assert failing["approval_rate"].status == "failed" and failing["accuracy"].status == "passed"


def test_an_own_metric_the_function_did_not_return_fails_as_not_measured():
    # Even where the manifest lets an undecidable gate pass: a gated name the code never computes is a mistake.
    manifest = apply_overrides(
        parse_manifest(MANIFEST, "releases/loans.yaml"),
        ["gates.default_model.approval_rate.on_inconclusive=warn"],
    )
    verdicts = _verdicts(manifest, {"accuracy": 0.7, "expected_loss": 950.0})
    missing = verdicts["approval_rate"]
    assert missing.status == "failed" and missing.holds_release and missing.observed is None
    assert missing.reason == (
        f"approval_rate was not measured: {METRICS} returned no value for it (it returned: expected_loss)"
    )
    # A built-in metric that could not be measured stays inconclusive, as before.
    assert _verdicts(manifest, {"expected_loss": 950.0, "approval_rate": 0.5})["accuracy"].status == "inconclusive"


def test_own_metric_gates_need_a_metrics_function_and_a_name_outside_the_table():
    without = _manifest()
    del without["members"]["default_model"]["metrics"]
    with pytest.raises(ManifestError) as info:
        parse_manifest(without, "releases/loans.yaml")
    message = str(info.value)
    assert "gates.default_model.expected_loss: unknown gate for a python_model on a binary task" in message
    assert message.endswith("to gate a metric of your own, name its function in `members.default_model.metrics`")

    # A name of the shared table keeps its tasks and range: `mae` is not a binary model's, whatever `metrics:` says.
    with pytest.raises(ManifestError, match=r"gates\.default_model\.mae: unknown gate for a python_model on a binary"):
        parse_manifest(_manifest(mae={"max": 5}), "releases/loans.yaml")
    with pytest.raises(ManifestError, match=r"accuracy\.min: 1\.5 is outside accuracy's range"):
        parse_manifest(_manifest(accuracy={"min": 1.5}), "releases/loans.yaml")
    with pytest.raises(ManifestError, match=r"gates\.default_model\.f1@0\.5: a gated metric's name is letters"):
        parse_manifest(_manifest(**{"f1@0.5": {"min": 0.5}}), "releases/loans.yaml")
    with pytest.raises(ManifestError, match=r"lift\.max: inf is not a finite number"):
        parse_manifest(_manifest(lift={"max": float("inf")}), "releases/loans.yaml")


def test_own_metric_gates_are_checks_on_the_report():
    manifest = parse_manifest(MANIFEST, "releases/loans.yaml")
    specs = {(s.asset_key.path[-1], s.name) for c in gate_checks(manifest) for s in c.check_specs}
    assert {("default_model_report", "expected_loss_gate"), ("default_model_report", "approval_rate_gate")} <= specs


def test_pointing_metrics_at_another_function_is_a_loosening_adding_one_is_not():
    committed = parse_manifest(MANIFEST, "releases/loans.yaml")
    swapped = apply_overrides(committed, ["members.default_model.metrics=team_metrics.lenient:score"])
    assert weakened_gates(committed, swapped) == [
        f"members.default_model.metrics: {METRICS} -> team_metrics.lenient:score"
    ]
    before = _manifest()
    del before["members"]["default_model"]["metrics"]
    before["gates"]["default_model"] = {"accuracy": {"min": 0.6}}
    assert weakened_gates(parse_manifest(before, "releases/loans.yaml"), committed) == []
