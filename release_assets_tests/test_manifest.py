from pathlib import Path

import pytest
import yaml

from release_assets.manifest import ManifestError, load_manifest, load_manifests, parse_manifest

REPO = Path(__file__).resolve().parent.parent


def _helpdesk() -> dict:
    return yaml.safe_load((REPO / "releases" / "helpdesk.yaml").read_text())


def test_shipped_manifests_load_in_dependency_order():
    manifests = {m.name: m for m in load_manifests(REPO / "releases")}
    assert set(manifests) == {"iris", "helpdesk", "kbqa"}
    order = manifests["helpdesk"].topological_order()
    assert order.index("messages") < order.index("intent_model") < order.index("chain")
    assert order.index("vision_model") < order.index("chain")


def test_unknown_kind_names_file_and_field():
    data = _helpdesk()
    data["members"]["digits"]["kind"] = "parquet_dataset"
    with pytest.raises(ManifestError, match=r"helpdesk\.yaml: members\.digits.*parquet_dataset"):
        parse_manifest(data, "releases/helpdesk.yaml")


def test_missing_field_names_it():
    data = _helpdesk()
    del data["members"]["chain"]["golden"]
    with pytest.raises(ManifestError, match=r"members\.chain\.golden: Field required"):
        parse_manifest(data, "releases/helpdesk.yaml")


def test_dependency_on_undeclared_member():
    data = _helpdesk()
    data["members"]["chain"]["uses"] = ["intent_model", "ocr_model"]
    with pytest.raises(ManifestError, match=r"members\.chain\.uses: 'ocr_model' is not a declared member"):
        parse_manifest(data, "releases/helpdesk.yaml")


def test_model_must_train_on_a_dataset():
    data = _helpdesk()
    data["members"]["vision_model"]["data"] = "intent_model"
    with pytest.raises(ManifestError, match=r"members\.vision_model\.data: 'intent_model' is not a dataset"):
        parse_manifest(data, "releases/helpdesk.yaml")


def test_cycle_is_reported_with_its_path():
    data = _helpdesk()
    data["members"]["chain"]["uses"] = ["intent_model", "judge"]
    data["members"]["judge"] = {"kind": "prompt_chain", "path": "p", "uses": ["chain"], "golden": "g.jsonl"}
    with pytest.raises(ManifestError, match=r"cycle: chain -> judge -> chain"):
        parse_manifest(data, "releases/helpdesk.yaml")


def test_gate_on_unknown_member():
    data = _helpdesk()
    data["gates"]["ranker"] = {"accuracy": {"min": 0.5}}
    with pytest.raises(ManifestError, match=r"gates\.ranker: no member named 'ranker'"):
        parse_manifest(data, "x.yaml")


def test_gate_without_bound():
    data = _helpdesk()
    data["gates"]["intent_model"]["accuracy"] = {"severity": "warn"}
    with pytest.raises(ManifestError, match=r"gates\.intent_model\.accuracy.*needs `min` or `max`"):
        parse_manifest(data, "x.yaml")


def test_unknown_model_param_is_named():
    data = _helpdesk()
    data["members"]["intent_model"]["params"]["epochz"] = 3
    with pytest.raises(ManifestError, match=r"members\.intent_model\.params\.epochz: Extra inputs"):
        parse_manifest(data, "x.yaml")


def test_file_name_must_match_release_name(tmp_path):
    path = tmp_path / "support.yaml"
    path.write_text((REPO / "releases" / "helpdesk.yaml").read_text())
    with pytest.raises(ManifestError, match=r"support\.yaml: name: 'helpdesk' must match"):
        load_manifest(path)


def test_invalid_yaml_names_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ManifestError, match=r"broken\.yaml: not valid YAML"):
        load_manifest(path)


def test_gate_names_and_bounds_are_checked_at_load():
    data = _helpdesk()
    data["gates"]["intent_model"]["acuracy"] = {"min": 0.9}
    with pytest.raises(ManifestError, match=r"gates\.intent_model\.acuracy: unknown gate for a text_classifier"):
        parse_manifest(data, "x.yaml")
    data = _helpdesk()
    data["gates"]["vision_model"]["slice_gap"] = {"min": 0.1}
    with pytest.raises(ManifestError, match=r"gates\.vision_model\.slice_gap: needs `max`"):
        parse_manifest(data, "x.yaml")
    data = _helpdesk()
    data["gates"]["vision_model"]["mft_accuracy"] = {"min": 0.9}  # behavioural gates are for text models only
    with pytest.raises(ManifestError, match=r"unknown gate for an image_classifier"):
        parse_manifest(data, "x.yaml")


def test_overrides_edit_one_run_and_cannot_rename_a_release():
    from release_assets.manifest.overrides import apply_overrides

    iris = load_manifest(REPO / "releases" / "iris.yaml")
    edited = apply_overrides(iris, ["members.classifier.params.C=0.5", "gates.classifier.accuracy.min=0.8"])
    assert edited.members["classifier"].params["C"] == 0.5
    assert edited.gates["classifier"]["accuracy"].min == 0.8
    with pytest.raises(ManifestError, match="cannot be overridden"):
        apply_overrides(iris, ["name=other"])
    with pytest.raises(ManifestError, match=r"has no field 'members\.nope\.params\.C'"):
        apply_overrides(iris, ["members.nope.params.C=1"])


@pytest.mark.parametrize(
    ("member", "gate", "bound", "expected"),
    [
        (
            "intent_model",
            "accuracy",
            {"min": 1.5},
            r"gates\.intent_model\.accuracy\.min: 1\.5 is outside accuracy's range \[0, 1\]",
        ),
        ("chain", "p95_ms", {"max": -5}, r"gates\.chain\.p95_ms\.max: -5 is outside p95_ms's range \[0, ∞\)"),
        (
            "vision_model",
            "regression",
            {"min": 0.02},
            r"gates\.vision_model\.regression\.min: 0\.02 is outside regression's range \[-1, 0\]",
        ),
        (
            "vision_model",
            "slice_gap",
            {"max": 15},
            r"gates\.vision_model\.slice_gap\.max: 15 is outside slice_gap's range \[0, 1\]",
        ),
        (
            "messages",
            "duplicates",
            {"max": 0.5},
            r"gates\.messages\.duplicates\.max: 0\.5 is not a whole number of rows",
        ),
        (
            "messages",
            "invalid_rows",
            {"max": -1},
            r"gates\.messages\.invalid_rows\.max: -1 is outside invalid_rows's range",
        ),
        (
            "intent_model",
            "macro_f1",
            {"min": 0.9, "max": 0.8},
            r"gates\.intent_model\.macro_f1: min 0\.9 is above max 0\.8",
        ),
    ],
)
def test_gate_bounds_must_lie_in_the_metric_range(member, gate, bound, expected):
    data = _helpdesk()
    data["gates"][member][gate] = bound
    with pytest.raises(ManifestError, match=r"^releases/helpdesk\.yaml: " + expected):
        parse_manifest(data, "releases/helpdesk.yaml")


def test_out_of_range_override_is_refused_naming_the_field():
    from release_assets.manifest.overrides import apply_overrides

    iris = load_manifest(REPO / "releases" / "iris.yaml")
    with pytest.raises(
        ManifestError, match=r"gates\.classifier\.accuracy\.min: 1\.5 is outside accuracy's range \[0, 1\]"
    ):
        apply_overrides(iris, ["gates.classifier.accuracy.min=1.5"])


def test_the_gate_table_is_complete_and_test_thresholds_are_valid():
    from bench.support.project import TINY_GATES
    from release_assets.manifest import installed_kinds
    from release_assets.promotion.gate_table import GATES

    supported = {gate: [k for k in installed_kinds().values() if gate in k.gates] for gate in GATES}
    for name, spec in GATES.items():
        # a decide function, or a metric some summary reports (checked end to end); always a range and a target
        assert supported[name], f"no installed kind supports the gate {name}"
        assert all(
            spec.role(k.name) in {"raw", "split", "model", "report", "evaluation", "shadow", "chain"}
            for k in supported[name]
        )
        assert spec.range != (None, None), spec
    shipped = {g for path in (REPO / "releases").glob("*.yaml") for g in _gate_names(path)}
    assert shipped <= set(GATES)

    data = _helpdesk()
    data["gates"].update(TINY_GATES)
    parse_manifest(data, "releases/helpdesk.yaml")


def _gate_names(path):
    return {gate for gates in (load_manifest(path).gates or {}).values() for gate in gates}
