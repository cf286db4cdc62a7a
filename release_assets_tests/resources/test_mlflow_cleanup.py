"""MLflow runs left RUNNING by Dagster runs that are over get ended, and only those."""

from __future__ import annotations

import subprocess
import time
import uuid

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

from release_assets.resources.mlflow_cleanup import (
    ENDED_BY,
    ENDED_BY_TAG,
    HOST_TAG,
    PID_TAG,
    REASON_TAG,
    OpenRun,
    end_stale_runs,
    process_tags,
    stale_runs,
)
from release_assets.resources.registry import RegistryResource, ensure_experiment

NOW = 1_800_000_000.0
DAY = 24 * 3600.0


# -- the decision ------------------------------------------------------------------------------------------------
def _decide(*runs: OpenRun, current: str | None = None) -> dict[str, tuple[str, str]]:
    return {v.run_id: (v.status, v.reason) for v in stale_runs(runs, now=NOW, current_dagster_run_id=current)}


def test_finished_dagster_runs_end_with_their_outcome():
    decided = _decide(
        OpenRun("ok", NOW - 60, "d1", "SUCCESS", process_alive=True),  # over, even if its process lives on
        OpenRun("bad", NOW - 60, "d2", "FAILURE"),
        OpenRun("cancelled", NOW - 60, "d3", "CANCELED"),
    )
    assert decided == {
        "ok": ("FINISHED", "dagster run d1 ended SUCCESS"),
        "bad": ("FAILED", "dagster run d2 ended FAILURE"),
        "cancelled": ("KILLED", "dagster run d3 ended CANCELED"),
    }


def test_in_progress_runs_are_kept_unless_their_process_is_gone():
    decided = _decide(
        OpenRun("alive", NOW - 5 * DAY, "d1", "STARTED", process_alive=True),
        OpenRun("elsewhere", NOW - 5 * DAY, "d2", "STARTED", process_alive=None),  # another host: trust Dagster
        OpenRun("queued", NOW - 60, "d3", "QUEUED"),
        OpenRun("killed", NOW - 60, "d4", "STARTED", process_alive=False),  # killed: Dagster never heard
    )
    assert decided == {"killed": ("FAILED", "dagster run d4 is STARTED but its process is gone")}


def test_runs_unknown_to_dagster_end_only_when_old_and_not_alive():
    decided = _decide(
        OpenRun("young", NOW - 3600, "d1", None, process_alive=False),
        OpenRun("old-alive", NOW - 2 * DAY, "d2", None, process_alive=True),
        OpenRun("old-dead", NOW - 2 * DAY, "d3", None, process_alive=False),
        OpenRun("old-unknown", NOW - 2 * DAY, None, None, process_alive=None),
    )
    assert decided == {
        "old-dead": ("FAILED", "dagster run d3 unknown to this Dagster instance, 48 h old, its process is gone"),
        "old-unknown": (
            "FAILED",
            "no dagster_run_id tag, 48 h old, its process cannot be checked",
        ),
    }


def test_the_current_runs_own_mlflow_runs_are_never_touched():
    assert _decide(OpenRun("mine", NOW - 9 * DAY, "me", None, process_alive=False), current="me") == {}


# -- against a real MLflow (sqlite) and Dagster instance -----------------------------------------------------------
@pytest.fixture
def tracking(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return uri, str(tmp_path / "artifacts")


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _add_dagster_run(instance, status: DagsterRunStatus) -> str:
    run_id = str(uuid.uuid4())
    instance.add_run(DagsterRun(job_name="release_all", run_id=run_id, status=status))
    return run_id


def _status_and_tags(client, run_id: str) -> tuple[str, dict]:
    run = client.get_run(run_id)
    return run.info.status, run.data.tags


def test_end_stale_runs_ends_only_the_stale_ones(tracking):
    import mlflow

    uri, artifacts = tracking
    experiment = ensure_experiment(uri, artifacts, "cleanup")
    client = mlflow.MlflowClient(tracking_uri=uri)
    with dg.instance_for_test() as instance:
        finished = _add_dagster_run(instance, DagsterRunStatus.FAILURE)
        in_progress = _add_dagster_run(instance, DagsterRunStatus.STARTED)
        killed = _add_dagster_run(instance, DagsterRunStatus.STARTED)
        here = process_tags()
        runs = {
            "finished": client.create_run(experiment, tags={"dagster_run_id": finished, **here}),
            "in_progress": client.create_run(experiment, tags={"dagster_run_id": in_progress, **here}),
            "killed": client.create_run(
                experiment, tags={"dagster_run_id": killed, HOST_TAG: here[HOST_TAG], PID_TAG: str(_dead_pid())}
            ),
            "unknown_young": client.create_run(experiment, tags={"dagster_run_id": str(uuid.uuid4())}),
            "unknown_old": client.create_run(
                experiment, start_time=int((time.time() - 2 * DAY) * 1000), tags={"dagster_run_id": str(uuid.uuid4())}
            ),
        }
        ids = {name: run.info.run_id for name, run in runs.items()}
        ended = end_stale_runs(uri, experiment, instance=instance)

    assert sorted(v.run_id for v in ended) == sorted([ids["finished"], ids["killed"], ids["unknown_old"]])
    for v in ended:
        print(f"\nended {v.run_id} as {v.status}: {v.reason}")
    for name in ("finished", "killed", "unknown_old"):
        status, tags = _status_and_tags(client, ids[name])
        assert status == "FAILED" and tags[ENDED_BY_TAG] == ENDED_BY and tags[REASON_TAG]
    for name in ("in_progress", "unknown_young"):
        status, tags = _status_and_tags(client, ids[name])
        assert status == "RUNNING" and ENDED_BY_TAG not in tags
    assert _status_and_tags(client, ids["finished"])[1][REASON_TAG] == f"dagster run {finished} ended FAILURE"


def test_the_next_run_sweeps_through_the_registry_resource(tracking):
    """Wired in: a run that uses the registry ends the RUNNING MLflow run of an earlier, failed Dagster run (a
    registry sync killed between creating its MLflow run and terminating it), and leaves a live one alone."""
    import mlflow

    uri, artifacts = tracking
    experiment = ensure_experiment(uri, artifacts)
    client = mlflow.MlflowClient(tracking_uri=uri)

    @dg.op(required_resource_keys={"registry"})
    def sync(context) -> str:
        return context.resources.registry.get().experiment_id

    @dg.job(resource_defs={"registry": RegistryResource(tracking_uri=uri, artifact_root=artifacts)})
    def registry_job():
        sync()

    config = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    with dg.instance_for_test() as instance:
        left_over = client.create_run(
            experiment, tags={"dagster_run_id": _add_dagster_run(instance, DagsterRunStatus.FAILURE)}
        )
        other = client.create_run(
            experiment, tags={"dagster_run_id": _add_dagster_run(instance, DagsterRunStatus.STARTED), **process_tags()}
        )
        result = registry_job.execute_in_process(instance=instance, run_config=config)
    assert result.success and result.output_for_node("sync") == experiment
    status, tags = _status_and_tags(client, left_over.info.run_id)
    assert status == "FAILED" and tags[ENDED_BY_TAG] == ENDED_BY
    assert _status_and_tags(client, other.info.run_id)[0] == "RUNNING"
