"""Promotion, rollback and the registry sync as Dagster jobs, with MLflow aliases checked against the ledger after
each step."""

from pathlib import Path

import dagster as dg
import pytest

from bench.support.project import edit_manifest
from release_assets.core.settings import Settings
from release_assets.definitions import build_defs, resources_for
from release_assets.manifest import load_manifests
from release_assets.record.ledger import replay
from release_assets_tests.conftest import local_resources


def _defs(project: Path, resources: dict) -> dg.Definitions:
    return build_defs([m for m in load_manifests(project / "releases") if m.name == "iris"], project, resources)


def _run(defs, job, instance, config=None):
    return defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False, run_config=config)


def _release(project, resources, instance) -> str:
    result = _run(_defs(project, resources), "release_all", instance)
    assert result.success
    [mat] = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.path[-1] == "release_unit"
    ]
    return mat.metadata["version"].value


def _promote(defs, instance, version, who="alice"):
    config = {
        "ops": {"promote": {"config": {"release": "iris", "version": version, "approved_by": who, "reason": "ok"}}}
    }
    return _run(defs, "promote_release", instance, config)


def _aliases_match_ledger(resources) -> dict:
    store = resources["store"].releases()
    state = replay(store.events("iris"))
    aliases = resources["registry"].get().aliases("iris")
    assert aliases.get("champion") == state.champion
    assert aliases.get("candidate") == state.candidate
    return aliases


def _unit_run(registry, version: str) -> str:
    """The MLflow run behind the registered model version of this iris release version."""
    [found] = registry.client.search_model_versions(f"name='iris' and tags.release_version='{version}'")
    return found.run_id


def test_publish_promote_release_again_promote_rollback(project, tmp_path):
    resources = local_resources(project, tmp_path / "store")
    with dg.instance_for_test() as instance:
        v1 = _release(project, resources, instance)
        defs = _defs(project, resources)
        assert not resources["registry"].get().has_version("iris", v1)  # the release run never touched MLflow
        sync = _run(defs, "registry_sync", instance)
        assert sync.success
        assert _aliases_match_ledger(resources) == {"candidate": v1}
        # The MLflow run belongs to the sync (what the stale-run sweep asks about) and names the run that built it.
        registry = resources["registry"].get()
        logged = registry.client.get_run(_unit_run(registry, v1))
        assert logged.info.status == "FINISHED" and logged.data.tags["dagster_run_id"] == sync.run_id
        assert logged.data.metrics["classifier_report.accuracy"] > 0.5
        assert logged.data.params["classifier.C"] == "1.0"  # the model's hyper-parameters, from the bundle
        release_run = instance.get_latest_materialization_event(dg.AssetKey(["iris", "release_unit"])).run_id
        assert logged.data.tags["built_by_dagster_run_id"] == release_run != sync.run_id

        refused = _promote(defs, instance, "0000000000000000")
        assert not refused.success
        message = next(e for e in refused.all_events if e.event_type_value == "STEP_FAILURE")
        assert "promotion refused: iris 0000000000000000 was never published" in message.step_failure_data.error.message

        assert _promote(defs, instance, v1).success
        assert _aliases_match_ledger(resources) == {"candidate": v1, "champion": v1}

        edit_manifest(project, "iris", lambda d: d["members"]["classifier"]["params"].update({"C": 0.5}))
        v2 = _release(project, resources, instance)
        assert v2 != v1
        assert _run(defs, "registry_sync", instance).success
        assert _aliases_match_ledger(resources) == {"candidate": v2, "champion": v1}
        assert _run(defs, "registry_sync", instance).success  # idempotent
        assert _promote(defs, instance, v2, who="bob").success
        assert _aliases_match_ledger(resources)["champion"] == v2

        config = {"ops": {"rollback": {"config": {"release": "iris", "requested_by": "carol", "reason": "p99 up"}}}}
        assert _run(defs, "rollback_release", instance, config).success
        assert _aliases_match_ledger(resources)["champion"] == v1
        events = resources["store"].releases().events("iris")
        assert [e["action"] for e in events] == [
            "published",
            "approved",
            "promoted",
            "published",
            "approved",
            "promoted",
            "rolled_back",
        ]
        assert events[-1]["actor"] == "carol" and events[-1]["reason"] == "p99 up"
        # Every move shows on the release unit's asset page, beside its materializations.
        observed = [
            e.asset_observation_data.asset_observation.metadata
            for e in instance.get_event_records(
                dg.EventRecordsFilter(
                    dg.DagsterEventType.ASSET_OBSERVATION, asset_key=dg.AssetKey(["iris", "release_unit"])
                ),
                ascending=True,
            )
            for e in [e.event_log_entry.dagster_event]
        ]
        moves = [m for m in observed if m["event"].value != "registered in MLflow"]
        assert [m["event"].value for m in moves] == ["promoted", "promoted", "rolled_back"]
        assert moves[-1]["champion"].value == v1 and moves[-1]["actor"].value == "carol"
        # ... and so does each registration, once, with its MLflow run and the model versions it registered.
        registered = [m for m in observed if m["event"].value == "registered in MLflow"]
        assert [m["version"].value for m in registered] == [v1, v2]
        assert [m["model_versions"].value for m in registered] == ["iris.classifier v1", "iris.classifier v2"]
        registry = resources["registry"].get()
        assert _unit_run(registry, v2) == registered[-1]["mlflow_run_id"].value


def test_release_with_s3_settings_publishes_to_s3(project, tmp_path, monkeypatch):
    s3_endpoint = pytest.importorskip("moto.server")
    server_port = __import__("release_assets_tests.release.test_store", fromlist=["_free_port"])._free_port()
    server = s3_endpoint.ThreadedMotoServer(ip_address="127.0.0.1", port=server_port)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server_port}"
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        settings = Settings(
            project_root=project,
            store_root=tmp_path / "store",
            store_backend="s3",
            s3_bucket="releases",
            s3_endpoint_url=endpoint,
            s3_region="us-east-1",
            mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
            mlflow_artifact_root=str(tmp_path / "mlartifacts"),
        )
        resources = resources_for(settings)
        resources["store"].releases().client.create_bucket(Bucket="releases")
        with dg.instance_for_test() as instance:
            version = _release(project, resources, instance)
            # The sync fetches the bundle from S3, verifies it, and registers it.
            assert _run(_defs(project, resources), "registry_sync", instance).success
        assert resources["registry"].get().aliases("iris") == {"candidate": version}
        store = resources["store"].releases()
        assert store.versions("iris") == [version]
        assert store.bundle_uri("iris", version).startswith("s3://releases/release_assets/releases/iris/")
        assert [e["action"] for e in store.events("iris")] == ["published"]
        assert not (tmp_path / "store" / "releases").exists()  # nothing published locally
    finally:
        server.stop()
