"""Both releases materialized in process on tiny settings: published, reproducible, and held back by gates."""

import json
from pathlib import Path

import dagster as dg
import pytest

from bench.support.project import edit_manifest
from release_assets.definitions import build_defs
from release_assets.manifest import load_manifests
from release_assets.release.bundle import verify_bundle
from release_assets.release.summary import summarise_run
from release_assets_tests.conftest import local_resources


def run_release(project: Path, store: Path, instance: dg.DagsterInstance, only: list[str] | None = None):
    manifests = [m for m in load_manifests(project / "releases") if only is None or m.name in only]
    defs = build_defs(manifests, project, local_resources(project, store))
    result = defs.resolve_job_def("release_all").execute_in_process(instance=instance, raise_on_error=False)
    return result, {s.release: s for s in summarise_run(result, [m.name for m in manifests])}


def materializations(result) -> dict[str, dict]:
    return {
        e.materialization.asset_key.to_user_string(): {
            k: getattr(v, "value", v) for k, v in e.materialization.metadata.items()
        }
        for e in result.get_asset_materialization_events()
    }


def test_both_releases_publish_verify_and_a_rerun_reuses_everything(tiny_project, tmp_path):
    store = tmp_path / "store"
    with dg.instance_for_test() as instance:
        first, summaries = run_release(tiny_project, store, instance)
        assert first.success
        for name in ("iris", "helpdesk"):
            s = summaries[name]
            assert s.published_ok and s.published, s.render()
            # First release: no champion, so drift and regression are inconclusive and pass with a warning.
            assert all(g.passed or g.severity == "WARN" for g in s.gates), s.render()
            assert {g.check for g in s.gates if not g.passed} <= {
                "drift_gate",
                "regression_gate",
                "golden_regression_gate",
            }
            manifest = verify_bundle(Path(s.bundle))
            assert manifest["version"] == s.version
            assert manifest["lineage"]["dagster_run_id"] == first.run_id
            assert all(v["status"] == "passed" or v["on_inconclusive"] == "warn" for v in manifest["gates"])
        helpdesk = json.loads((Path(summaries["helpdesk"].bundle).parent / "manifest.json").read_text())
        assert {"intent_model", "vision_model", "chain", "chain_evaluation", "messages_split"} <= set(
            helpdesk["members"]
        )
        assert helpdesk["lineage"]["code_versions"]["intent_model"]
        formats = {f["format"] for m in helpdesk["members"].values() for f in m["files"]}
        assert "safetensors" in formats and "binary" not in formats  # nothing pickled slipped in

        second, again = run_release(tiny_project, store, instance)
        assert second.success
        mats = materializations(second)
        assert all(meta["reused"] for key, meta in mats.items() if not key.endswith("release_unit"))
        for name in ("iris", "helpdesk"):
            assert again[name].version == summaries[name].version
            assert again[name].published is False  # nothing new published


def test_a_failed_data_gate_leaves_no_release_unit(tiny_project, tmp_path):
    project = tiny_project
    path = project / "data" / "support" / "messages.jsonl"
    lines = path.read_text().splitlines()
    broken = json.loads(lines[3])
    broken["intent"] = "teleport"
    lines[3] = json.dumps(broken)
    path.write_text("\n".join(lines) + "\n")
    store = tmp_path / "store"
    with dg.instance_for_test() as instance:
        result, summaries = run_release(project, store, instance, only=["helpdesk"])
    s = summaries["helpdesk"]
    assert not s.published_ok
    [failed] = [g for g in s.gates if not g.passed and g.severity == "ERROR"]
    assert failed.check == "invalid_rows_gate" and "invalid_rows = 1" in failed.reason
    evaluation = next(e for e in result.get_asset_check_evaluations() if not e.passed)
    assert (
        "line 4" in evaluation.metadata["worst_examples"].value
        or "| 4 |" in evaluation.metadata["worst_examples"].value
    )
    assert not (store / "releases" / "helpdesk").exists()


def test_noisy_labels_fail_the_model_gate_and_hold_the_release(project, tmp_path):
    # A classifier trained on shuffled labels cannot meet the accuracy gate: the gate must say so.
    edit_manifest(project, "iris", lambda d: d["members"]["classifier"]["params"].update({"C": 1e-6}))
    store = tmp_path / "store"
    with dg.instance_for_test() as instance:
        result, summaries = run_release(project, store, instance, only=["iris"])
    s = summaries["iris"]
    failing = {g.check for g in s.gates if not g.passed}
    assert "accuracy_gate" in failing
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "accuracy_gate")
    assert check.metadata["observed"].value < 0.9
    assert "worst_examples" in check.metadata
    assert not (store / "releases" / "iris").exists()


def test_release_unit_alone_recomputes_gates_and_refuses(project, tmp_path):
    """Blocking checks act within one run; materializing only release_unit must still not publish."""
    store = tmp_path / "store"
    with dg.instance_for_test() as instance:
        edit_manifest(project, "iris", lambda d: d["gates"]["classifier"].update({"accuracy": {"min": 0.999}}))
        manifests = load_manifests(project / "releases")
        defs = build_defs([m for m in manifests if m.name == "iris"], project, local_resources(project, store))
        upstream = dg.AssetSelection.groups("iris_data", "iris_models", "iris_evaluation")
        unit = dg.AssetSelection.assets(dg.AssetKey(["iris", "release_unit"]))
        jobs = [
            dg.define_asset_job("upstream_only", selection=upstream),
            dg.define_asset_job("unit_only", unit),
        ]
        defs = dg.Definitions.merge(defs, dg.Definitions(jobs=jobs))
        upstream_run = defs.resolve_job_def("upstream_only").execute_in_process(instance=instance, raise_on_error=False)
        # The upstream run itself fails the blocking accuracy check, as it should.
        assert any(not e.passed for e in upstream_run.get_asset_check_evaluations())
        unit_only = defs.resolve_job_def("unit_only").execute_in_process(instance=instance, raise_on_error=False)
    assert not unit_only.success
    failure = next(e for e in unit_only.all_events if e.event_type_value == "STEP_FAILURE")
    assert "held back" in failure.step_failure_data.error.message
    assert not (store / "releases" / "iris").exists()


@pytest.mark.parametrize("change", ["format", "golden"])
def test_chain_gates_fail_on_a_broken_chain(tiny_project, tmp_path, change):
    if change == "format":
        # The schema says amounts are whole numbers; "$49.99" in a message then breaks the step's contract.
        chain = tiny_project / "prompts" / "helpdesk" / "chain.yaml"
        chain.write_text(chain.read_text().replace("amount: float?", "amount: int?"))
        gate = "format_valid_gate"
    else:
        edit_manifest(tiny_project, "helpdesk", lambda d: d["gates"]["chain"].update({"required_facts": {"min": 0.99}}))
        kb = tiny_project / "data" / "support" / "knowledge_base.yaml"
        kb.write_text(kb.read_text().replace("30 days", "thirty days"))
        gate = "required_facts_gate"
    store = tmp_path / "store"
    with dg.instance_for_test() as instance:
        _, summaries = run_release(tiny_project, store, instance, only=["helpdesk"])
    s = summaries["helpdesk"]
    assert gate in {g.check for g in s.gates if not g.passed}, s.render()
    assert not s.published_ok
    assert not (store / "releases" / "helpdesk").exists()


def test_a_chain_config_error_is_reported_by_its_cause_not_by_the_op_that_failed(tiny_project, tmp_path):
    chain = tiny_project / "prompts" / "helpdesk" / "chain.yaml"
    text = chain.read_text()
    assert "    template: classify_intent.j2\n" in text
    chain.write_text(text.replace("    template: classify_intent.j2\n", "    template: classify_intent.j2: oops\n"))
    line = text[: text.index("    template: classify_intent.j2")].count("\n") + 1
    with dg.instance_for_test() as instance:
        _, summaries = run_release(tiny_project, tmp_path / "store", instance, only=["helpdesk"])
    rendered = summaries["helpdesk"].render()
    assert "FAILED" in rendered
    [failure] = summaries["helpdesk"].failures
    assert failure.startswith("helpdesk__chain: ") and f"chain.yaml line {line}, column" in failure, rendered
    assert "Error occurred while executing" not in rendered and "dagster." not in rendered
