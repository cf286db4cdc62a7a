"""registry_sync_sensor asks for a sync of exactly the releases whose ledger grew since its last tick."""

import json

import dagster as dg

from release_assets.definitions import build_defs
from release_assets.manifest import load_manifests
from release_assets.record.ledger import record_published
from release_assets_tests.conftest import local_resources


def _tick(defs, instance, cursor):
    """One tick as the daemon runs it; the request (or None) with the skip message, and the new cursor."""
    sensor = defs.get_sensor_def("registry_sync_sensor")
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources) as context:
        data = sensor.evaluate_tick(context)
    [request] = data.run_requests or [None]
    return request, data.skip_message, data.cursor


def test_requests_a_sync_for_each_ledger_that_moved_and_only_then(project, tmp_path):
    resources = local_resources(project, tmp_path / "store")
    defs = build_defs(load_manifests(project / "releases"), project, resources)
    store = resources["store"].releases()
    with dg.instance_for_test() as instance:
        request, skipped, cursor = _tick(defs, instance, None)
        assert request is None and "no ledger moved" in skipped

        record_published(store, "iris", "a" * 16, actor="test", run_id="r1")
        request, _, cursor = _tick(defs, instance, cursor)
        assert request.run_config == {"ops": {"sync_registry": {"config": {"releases": ["iris"]}}}}
        assert json.loads(cursor)["iris"] == 1

        again, skipped, cursor = _tick(defs, instance, cursor)
        assert again is None and "iris: 1 events" in skipped

        record_published(store, "helpdesk", "b" * 16, actor="test", run_id="r2")
        record_published(store, "iris", "c" * 16, actor="test", run_id="r3")
        both, _, _ = _tick(defs, instance, cursor)
        assert both.run_config["ops"]["sync_registry"]["config"]["releases"] == ["helpdesk", "iris"]
        assert both.run_key != request.run_key


def _resources_with_mlflow(project, tmp_path, tracking_uri: str) -> dict:
    from release_assets.core.settings import Settings
    from release_assets.definitions import resources_for

    settings = Settings(
        project_root=project,
        store_root=tmp_path / "store",
        mlflow_tracking_uri=tracking_uri,
        mlflow_artifact_root=str(tmp_path / "mlflow-artifacts"),
    )
    return resources_for(settings)


def _run_requested(defs, instance, request) -> bool:
    job = defs.resolve_job_def("registry_sync")
    tags = {**request.tags, "dagster/run_key": request.run_key}
    result = job.execute_in_process(run_config=request.run_config, instance=instance, tags=tags, raise_on_error=False)
    return result.success


def _publish_with_metrics(store, tmp_path) -> str:
    """A real one-member bundle, with the member metrics a registration logs."""
    from bench.support.bundles import unit_manifest
    from release_assets.release.bundle import write_bundle

    manifest = unit_manifest("iris", "one")
    manifest["members"]["m"]["metrics"] = {"accuracy": 1.0}
    (tmp_path / "model.json").write_text("one")
    write_bundle({"m/model.json": tmp_path / "model.json"}, manifest, tmp_path / "bundle.tar.gz")
    store.publish("iris", manifest["version"], tmp_path / "bundle.tar.gz", manifest)
    return manifest["version"]


def test_a_failed_sync_is_launched_again_after_a_wait_until_it_succeeds(project, tmp_path, monkeypatch):
    from bench.support.services import free_port
    from release_assets.release import jobs as sync_jobs

    dead = f"http://127.0.0.1:{free_port()}"  # MLflow down: nobody listens
    down = build_defs(load_manifests(project / "releases"), project, _resources_with_mlflow(project, tmp_path, dead))
    up = build_defs(load_manifests(project / "releases"), project, local_resources(project, tmp_path / "store"))
    store = local_resources(project, tmp_path / "store")["store"].releases()
    version = _publish_with_metrics(store, tmp_path)
    record_published(store, "iris", version, actor="test", run_id="r1")
    now = [1_000_000.0]
    monkeypatch.setattr(sync_jobs.time, "time", lambda: now[0])
    with dg.instance_for_test() as instance:
        request, _, cursor = _tick(down, instance, None)
        assert not _run_requested(down, instance, request)  # the sync fails: MLflow unreachable

        waiting, skipped, cursor = _tick(down, instance, cursor)  # no ledger moved, and the wait is not over
        assert waiting is None and "a failed sync of iris is retried later" in skipped
        now[0] += sync_jobs.SYNC_INTERVAL_S + 1
        retry, _, cursor = _tick(down, instance, cursor)
        assert retry.run_config["ops"]["sync_registry"]["config"]["releases"] == ["iris"]
        assert retry.run_key == f"{request.run_key}-retry1"
        assert not _run_requested(down, instance, retry)  # still down: the next wait is twice as long

        now[0] += sync_jobs.SYNC_INTERVAL_S + 1
        waiting, _, cursor = _tick(down, instance, cursor)
        assert waiting is None  # the failure is seen now: the doubled wait counts from here
        now[0] += 2 * sync_jobs.SYNC_INTERVAL_S + 1
        second, _, cursor = _tick(up, instance, cursor)
        assert second.run_key == f"{request.run_key}-retry2"
        assert _run_requested(up, instance, second)  # MLflow back: registered, aliases mirrored

        done, skipped, cursor = _tick(up, instance, cursor)
        assert done is None and "retried later" not in skipped
        assert "_pending_sync" not in json.loads(cursor)
