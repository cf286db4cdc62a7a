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
