"""The canary as Dagster jobs on a real iris release; MLflow aliases compared with the ledger after each move."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from bench.support.project import edit_manifest
from release_assets.manifest import load_manifest
from release_assets.record.ledger import replay
from release_assets.rollout.canary import Rollout, tick
from release_assets_tests.conftest import local_resources
from release_assets_tests.rollout.test_canary import Source
from release_assets_tests.rollout.test_jobs import _defs, _promote, _release, _run


def _aliases_match_ledger(resources) -> dict:
    state = replay(resources["store"].releases().events("iris"))
    aliases = resources["registry"].get().aliases("iris")
    assert aliases.get("champion") == state.champion
    assert aliases.get("canary") == (state.canary.version if state.canary else None)
    return aliases


def _start(defs, instance, version):
    config = {"release": "iris", "version": version, "approved_by": "bob", "reason": "try C=0.5"}
    return _run(defs, "start_canary", instance, {"ops": {"start_canary_op": {"config": config}}})


def test_start_abort_then_a_canary_promoted_by_the_monitor_keep_mlflow_aliases_on_the_ledger(
    project, tmp_path, monkeypatch
):
    monkeypatch.setenv("RELEASE_ASSETS_PROJECT_ROOT", str(project))  # the jobs read the rollout policy from here
    monkeypatch.setenv("RELEASE_ASSETS_METRICS_URLS", "http://127.0.0.1:9/metrics")  # no server: no baseline
    monkeypatch.delenv("RELEASE_ASSETS_PROMETHEUS_URL", raising=False)
    resources = local_resources(project, tmp_path / "store")
    with dg.instance_for_test() as instance:
        v1 = _release(project, resources, instance)
        defs = _defs(project, resources)
        refused = _start(defs, instance, v1)
        assert not refused.success  # no champion yet to judge a canary against
        assert _promote(defs, instance, v1).success
        edit_manifest(project, "iris", lambda d: d["members"]["classifier"]["params"].update({"C": 0.5}))
        v2 = _release(project, resources, instance)
        defs = _defs(project, resources)

        assert _start(defs, instance, v2).success
        assert _aliases_match_ledger(resources)["canary"] == v2
        abort = {"ops": {"abort_canary_op": {"config": {"release": "iris", "requested_by": "carol", "reason": "no"}}}}
        assert _run(defs, "abort_canary", instance, abort).success
        assert "canary" not in _aliases_match_ledger(resources)

        assert _start(defs, instance, v2).success
        spec = load_manifest(project / "releases" / "iris.yaml").rollout
        store = resources["store"].releases()
        r = Rollout(store, "iris", spec, store.root / "flags", resources["registry"].get)
        source = Source()
        # Started with no server to read: the first tick that reads metrics records them, and judges nothing yet.
        assert tick(r, source).action == "baselined"
        for _ in spec.steps[:-1]:  # each step: enough traffic on both sides, judged after its bake time
            source.add(v1, requests=spec.min_requests)
            source.add(v2, requests=spec.min_requests)
            result = tick(r, source, datetime.now(UTC) + timedelta(seconds=spec.bake_s + 1))
            assert result.action in ("advanced", "promoted"), result.note
        assert result.action == "promoted"
        aliases = _aliases_match_ledger(resources)
        assert aliases["champion"] == v2 and "canary" not in aliases

        observed = [
            e.event_log_entry.dagster_event.asset_observation_data.asset_observation.metadata["event"].value
            for e in instance.get_event_records(
                dg.EventRecordsFilter(
                    dg.DagsterEventType.ASSET_OBSERVATION, asset_key=dg.AssetKey(["iris", "rollout"])
                ),
                ascending=True,
            )
        ]
        assert observed == ["canary_started", "canary_aborted", "canary_started"]
