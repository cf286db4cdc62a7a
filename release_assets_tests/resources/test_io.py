"""The IO manager hands each run its own upstream references, whatever another run wrote in between."""

import dagster as dg

from release_assets.artifacts import ArtifactRef
from release_assets.resources.io import ArtifactRefIOManager


def _ref(member: str, fingerprint: str) -> ArtifactRef:
    return ArtifactRef(
        release="r", member=member, kind="test", fingerprint=fingerprint, location=f"x/{fingerprint}", files={}
    )


class Build(dg.Config):
    fingerprint: str


def _assets(during_run=None):
    @dg.asset(key=["r", "model"])
    def model(config: Build) -> ArtifactRef:
        return _ref("model", config.fingerprint)

    @dg.asset(key=["r", "report"], ins={"model": dg.AssetIn(["r", "model"])})
    def report(model: ArtifactRef) -> ArtifactRef:
        if during_run:
            during_run()  # another run materializes the same asset between this run's steps
        return _ref("report", model.fingerprint)

    @dg.asset(key=["r", "unit"], ins={"model": dg.AssetIn(["r", "model"]), "report": dg.AssetIn(["r", "report"])})
    def unit(model: ArtifactRef, report: ArtifactRef) -> ArtifactRef:
        assert model.fingerprint == report.fingerprint, (model.fingerprint, report.fingerprint)
        return _ref("unit", model.fingerprint)

    return [model, report, unit]


def _config(fingerprint: str) -> dict:
    return {"ops": {"r__model": {"config": {"fingerprint": fingerprint}}}}


def test_a_run_loads_its_own_upstream_when_another_run_overwrote_it(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    resources = {"io_manager": ArtifactRefIOManager(root=str(tmp_path))}
    [model, *_] = _assets()

    def other_run() -> None:
        assert dg.materialize([model], instance=instance, resources=resources, run_config=_config("theirs")).success

    result = dg.materialize(_assets(other_run), instance=instance, resources=resources, run_config=_config("mine"))
    assert result.success
    assert result.output_for_node("r__unit").fingerprint == "mine"


def test_an_asset_outside_the_run_is_its_latest_materialization(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    resources = {"io_manager": ArtifactRefIOManager(root=str(tmp_path))}
    assets = _assets()
    assert dg.materialize(assets, instance=instance, resources=resources, run_config=_config("first")).success
    assert dg.materialize(assets[:1], instance=instance, resources=resources, run_config=_config("second")).success

    # Only the report and the unit run: the model comes from its latest materialization, in another run.
    only_downstream = dg.materialize(assets, instance=instance, resources=resources, selection=["r/report", "r/unit"])
    assert only_downstream.output_for_node("r__unit").fingerprint == "second"


def test_a_reference_never_materialized_is_a_clear_failure(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    resources = {"io_manager": ArtifactRefIOManager(root=str(tmp_path))}
    result = dg.materialize(
        _assets(), instance=instance, resources=resources, selection=["r/report"], raise_on_error=False
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "r/model has not been materialized" in failure.step_failure_data.error.message
