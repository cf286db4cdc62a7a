"""A build the gates hold is triaged against the champion before anything is published: in the failed chain
gate's description, in the ``regression_triage`` asset, and in ``release-assets release`` output."""

from __future__ import annotations

import json

import dagster as dg

from bench.support.project import edit_manifest, make_tiny
from release_assets.release.store import LocalReleaseStore
from release_assets.sensors import triage_requests
from release_assets_tests.evaluation.test_triage import CRIPPLED


def _only_version(store: LocalReleaseStore) -> str:
    [version] = store.versions("helpdesk")
    return version


def test_a_held_build_is_triaged_in_the_gate_the_asset_and_the_cli(cli_env, project, tmp_path, capsys):
    from release_assets.cli.main import main

    make_tiny(project)
    assert main(["release", "helpdesk"]) == 0, capsys.readouterr()
    store = LocalReleaseStore(tmp_path / "store")
    champion = _only_version(store)
    assert main(["promote", "helpdesk", champion, "--approved-by", "alice", "--reason", "first"]) == 0
    baseline = store.manifest("helpdesk", champion)["members"]["chain_evaluation"]["metrics"]["intent_accuracy"]
    capsys.readouterr()

    def cripple(data: dict) -> None:  # a useless intent model, and a gate that holds anything worse than the champion
        data["members"]["intent_model"]["params"] = CRIPPLED
        data["gates"]["chain"]["intent_accuracy"] = {"min": baseline}

    edit_manifest(project, "helpdesk", cripple)
    assert main(["release", "helpdesk"]) == 1
    out = capsys.readouterr().out
    assert "== helpdesk: HELD BACK" in out
    assert f"## Regression triage: helpdesk this build (candidate) against {champion} (baseline)" in out
    assert "intent_model (" in out.split("Changed: ")[1].splitlines()[0]  # the only member that changed
    assert store.versions("helpdesk") == [champion]  # nothing published

    held_run = next(line.split()[1] for line in out.splitlines() if line.startswith("run "))
    with dg.DagsterInstance.get() as instance:
        [record] = instance.fetch_materializations(dg.AssetKey(["helpdesk", "regression_triage"]), limit=5).records
        meta = {k: getattr(v, "value", v) for k, v in record.asset_materialization.metadata.items()}
        assert meta["status"] == "triaged" and meta["champion"] == champion
        # The failed gate computed it first; the asset reused it from the cache.
        assert meta["reused"] is True
        assert meta["blamed"]["intent_accuracy"] == "intent_model"
        evaluations = instance.all_logs(held_run, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    gate = next(
        e.dagster_event.event_specific_data
        for e in evaluations
        if e.dagster_event.event_specific_data.check_name == "intent_accuracy_gate"
    )
    assert not gate.passed
    assert f"Regression triage against champion {champion}:" in gate.description
    assert "- intent_accuracy " in gate.description and "intent_model " in gate.description
    assert "| intent_model |" in gate.metadata["regression_triage"].value


def test_a_second_triage_of_the_same_build_is_reused(cli_env, project, tmp_path, capsys):
    """Nothing about the build or the champion changed: the triage artifact is found by its fingerprint."""
    from release_assets.artifacts import REF_FILE, ArtifactRef, LocalArtifactStore
    from release_assets.cli.main import main
    from release_assets.evaluation.regression_triage import triage_build, triage_code_version

    make_tiny(project)
    assert main(["release", "helpdesk"]) == 0
    store = LocalReleaseStore(tmp_path / "store")
    champion = _only_version(store)
    edit_manifest(project, "helpdesk", lambda d: d["members"]["intent_model"].update(params=CRIPPLED))
    assert main(["release", "helpdesk"]) == 0  # no gate on intent accuracy: this one publishes
    capsys.readouterr()
    cache = LocalArtifactStore(tmp_path / "store")
    champion_model = store.manifest("helpdesk", champion)["members"]["intent_model"]["digest"]
    refs = [
        ArtifactRef.model_validate_json(path.read_text())
        for path in (cache.root / "artifacts" / "helpdesk" / "chain_evaluation").glob(f"*/{REF_FILE}")
    ]
    [evaluation] = [ref for ref in refs if ref.upstream["helpdesk/intent_model"] != champion_model]
    first, reused = triage_build(cache, store, evaluation, champion, triage_code_version())
    assert not reused
    again, reused = triage_build(cache, store, evaluation, champion, triage_code_version())
    assert reused and again == first
    result = json.loads(first.path(cache.root, "triage.json").read_text())
    assert result["factors"] == ["intent_model"] and result["candidate"] == "this build"
    assert set(first.upstream) == {
        "helpdesk/chain_evaluation",
        "helpdesk/chain",
        "helpdesk/intent_model",
        "helpdesk/vision_model",
        "helpdesk/judge",  # the chain's judge is a member it uses, so a changed judge is a factor triage can blame
    }


def test_only_gates_on_models_and_chain_evaluations_start_a_triage():
    triaged = {"helpdesk": {"helpdesk/intent_model_report", "helpdesk/chain_evaluation"}}
    failed = [
        {"release": "helpdesk", "asset": "helpdesk/messages"},
        {"release": "iris", "asset": "iris/classifier_report"},
    ]
    assert triage_requests(failed, triaged, "r1") == []
    failed.append({"release": "helpdesk", "asset": "helpdesk/chain_evaluation"})
    failed.append({"release": "helpdesk", "asset": "helpdesk/intent_model_report"})
    [request] = triage_requests(failed, triaged, "r1")
    assert request.job_name == "helpdesk_triage" and request.run_key == "r1:helpdesk"
    assert request.tags["held_run"] == "r1"
