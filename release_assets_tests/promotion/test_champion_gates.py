"""Champion-relative gates end to end: regression read from the promoted champion, and data drift."""

import json
from pathlib import Path

import dagster as dg

from release_assets.definitions import build_defs
from release_assets.manifest import load_manifests
from release_assets.manifest.overrides import apply_overrides
from release_assets.record.ledger import promote, replay
from release_assets_tests.conftest import local_resources


def _run(project: Path, resources: dict, instance, release: str, overrides: list[str] = ()):
    manifests = [m for m in load_manifests(project / "releases") if m.name == release]
    if overrides:
        manifests = [apply_overrides(manifests[0], list(overrides))]
    defs = build_defs(manifests, project, resources)
    result = defs.resolve_job_def("release_all").execute_in_process(instance=instance, raise_on_error=False)
    # Keyed by check name, and by asset/check for releases where several members share a gate name.
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    checks.update({f"{e.asset_key.path[-1]}:{e.check_name}": e for e in result.get_asset_check_evaluations()})
    versions = [
        e.materialization.metadata["version"].value
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.path[-1] == "release_unit"
    ]
    return checks, (versions[0] if versions else None)


def test_a_worse_candidate_fails_regression_against_the_promoted_champion_and_keeps_it(project, tmp_path):
    resources = local_resources(project, tmp_path / "store")
    store = resources["store"].releases()
    with dg.instance_for_test() as instance:
        checks, v1 = _run(project, resources, instance, "iris")
        assert checks["regression_gate"].metadata["status"].value == "inconclusive"  # no champion yet
        promote(store, "iris", v1, "alice", "first")

        # Within noise: a slightly different regularisation changes the model bytes, not its accuracy.
        checks, v2 = _run(project, resources, instance, "iris", ["members.classifier.params.C=0.9"])
        regression = checks["regression_gate"]
        assert regression.passed, regression.description
        assert "paired bootstrap CI" in regression.description
        assert v2 is not None and v2 != v1

        # Beyond noise: a crippled model is worse than the champion on the same test rows.
        checks, v3 = _run(project, resources, instance, "iris", ["members.classifier.params.C=0.0001"])
        regression = checks["regression_gate"]
        assert not regression.passed
        assert "worse beyond noise" in regression.description
        meta = regression.metadata
        assert meta["champion"].value > meta["observed"].value
        assert "worst_examples" in meta
        assert v3 is None  # held back: no release unit
        assert replay(store.events("iris")).champion == v1  # the champion stays


def test_regression_reads_the_champion_from_the_ledger_not_the_candidate(project, tmp_path):
    """A peer tool once compared the candidate with itself; here the champion's numbers must be its own."""
    resources = local_resources(project, tmp_path / "store")
    store = resources["store"].releases()
    with dg.instance_for_test() as instance:
        # A weak champion, published under relaxed gates, so its numbers are unmistakably its own.
        relaxed = [
            "members.classifier.params.C=0.0001",
            "gates.classifier.accuracy.min=0.5",
            "gates.classifier.macro_f1.min=0.5",
            "gates.classifier.min_class_recall.min=0.3",
            "gates.classifier.slice_gap.max=0.6",
        ]
        _, v1 = _run(project, resources, instance, "iris", relaxed)
        assert v1 is not None
        promote(store, "iris", v1, "alice", "weak but promoted", override_weakened_gates=True)
        champion_report = json.loads(json.dumps(store.manifest("iris", v1)["members"]["classifier_report"]))
        checks, _ = _run(project, resources, instance, "iris")
    regression = checks["regression_gate"]
    assert regression.metadata["champion"].value == champion_report["metrics"]["accuracy"]
    assert regression.metadata["observed"].value != regression.metadata["champion"].value


def test_unchanged_model_passes_regression_as_identical(project, tmp_path):
    resources = local_resources(project, tmp_path / "store")
    with dg.instance_for_test() as instance:
        _, v1 = _run(project, resources, instance, "iris")
        promote(resources["store"].releases(), "iris", v1, "alice", "first")
        checks, _ = _run(project, resources, instance, "iris")
    assert checks["regression_gate"].passed
    assert "identical to champion" in checks["regression_gate"].description


def test_shifted_messages_fail_the_drift_gate(tiny_project, tmp_path):
    resources = local_resources(tiny_project, tmp_path / "store")
    with dg.instance_for_test() as instance:
        checks, v1 = _run(tiny_project, resources, instance, "helpdesk")
        assert checks["messages_split:drift_gate"].metadata["status"].value == "inconclusive"
        promote(resources["store"].releases(), "helpdesk", v1, "alice", "first")
        checks, _ = _run(tiny_project, resources, instance, "helpdesk")
        assert checks["messages_split:drift_gate"].passed  # the same data does not drift from itself
        assert checks["digits_split:drift_gate"].passed

        # Every chat message becomes a long email: channel, length and text statistics all move.
        path = tiny_project / "data" / "support" / "messages.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for row in rows:
            row["channel"] = "email"
            suffix = " Kindly find the warehouse logistics paperwork attached for reconciliation purposes."
            row["text"] += suffix
            row["length"] = "long"
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        checks, v2 = _run(tiny_project, resources, instance, "helpdesk")
    drift = checks["messages_split:drift_gate"]
    assert not drift.passed
    assert "channel" in drift.description and "length" in drift.description
    assert checks["digits_split:drift_gate"].passed  # only what changed drifts
    assert v2 is None


def test_a_model_bundled_with_another_models_report_is_held(project, tmp_path):
    """A partial run (model retrained, report not) must not publish the new model on the old model's gates."""
    resources = local_resources(project, tmp_path / "store")
    with dg.instance_for_test() as instance:
        _, v1 = _run(project, resources, instance, "iris")
        assert v1 is not None
        [iris] = [m for m in load_manifests(project / "releases") if m.name == "iris"]
        weak = apply_overrides(iris, ["members.classifier.params.C=0.0001"])
        defs = build_defs([weak], project, resources)
        model_only = dg.define_asset_job("model_only", dg.AssetSelection.assets(dg.AssetKey(["iris", "classifier"])))
        unit_only = dg.define_asset_job("unit_only", dg.AssetSelection.assets(dg.AssetKey(["iris", "release_unit"])))
        defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[model_only, unit_only]))
        assert defs.resolve_job_def("model_only").execute_in_process(instance=instance).success
        result = defs.resolve_job_def("unit_only").execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.error.message
    assert "consistency" in message and "rematerialize iris/classifier_report" in message


def test_a_rebuilt_cache_entry_never_stands_in_for_the_champion(project, tmp_path):
    from release_assets.record.champion import ChampionView

    resources = local_resources(project, tmp_path / "store")
    store = resources["store"].releases()
    with dg.instance_for_test() as instance:
        _, v1 = _run(project, resources, instance, "iris")
    promote(store, "iris", v1, "alice", "first")
    cache_root = tmp_path / "store"
    view = ChampionView(store, cache_root, "iris")
    cached = view.member_dir("classifier")
    assert cached.is_relative_to(cache_root / "artifacts")  # the cache is used while it matches
    (cached / "model.json").write_text('{"tampered": true}')
    fresh_view = ChampionView(store, cache_root, "iris")  # its extracted files live as long as the view
    fresh = fresh_view.member_dir("classifier")
    assert not fresh.is_relative_to(cache_root / "artifacts")  # now read from the verified bundle
    assert json.loads((fresh / "model.json").read_text()) != {"tampered": True}
