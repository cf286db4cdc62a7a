"""Executor selection and the Celery settings, without a broker: what `make test` can check of the scale profile."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from release_assets.core.settings import DEFAULT_BROKER
from release_assets.resources import executors as ex

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def environ(monkeypatch):
    """The executor settings unset, whatever the shell running the tests has; tests set what they need."""
    for name in (ex.EXECUTOR_ENV, ex.BROKER_ENV, ex.BACKEND_ENV, ex.QUEUE_PREFIX_ENV, ex.TRAINING_RETRIES_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_default_is_in_process_and_unknown_kinds_are_refused(environ):
    import dagster as dg

    assert ex.executor_from_env() is dg.in_process_executor
    environ.setenv(ex.EXECUTOR_ENV, " ")
    assert ex.executor_from_env() is dg.in_process_executor
    environ.setenv(ex.EXECUTOR_ENV, "dask")
    with pytest.raises(ValueError, match="expected one of in_process, celery, k8s"):
        ex.executor_kind()


def test_celery_settings_come_from_the_environment(environ):
    assert ex.celery_settings()["broker"] == DEFAULT_BROKER
    environ.setenv(ex.BROKER_ENV, "pyamqp://u:p@mq:5672//")
    environ.setenv(ex.QUEUE_PREFIX_ENV, "ci-")
    rabbit = ex.celery_settings()
    assert rabbit["backend"] == "rpc://"
    assert rabbit["queues"] == {"training": "ci-training", "evaluation": "ci-evaluation"}
    assert rabbit["training_retries"] == 2
    environ.delenv(ex.QUEUE_PREFIX_ENV)
    environ.setenv(ex.BROKER_ENV, "redis://cache:6379/0")
    environ.setenv(ex.TRAINING_RETRIES_ENV, "0")
    redis = ex.celery_settings()
    assert redis["backend"] == "redis://cache:6379/0" and redis["training_retries"] == 0
    environ.setenv(ex.BROKER_ENV, "sqs://queue")
    with pytest.raises(ValueError, match="RabbitMQ"):
        ex.celery_settings()
    with pytest.raises(ValueError, match="RabbitMQ"):  # when definitions load, not at the first run
        ex.executor_from_env()


def test_steps_of_a_models_group_go_to_the_training_queue():
    assert ex.step_kind(["helpdesk_models"]) == "training"
    assert ex.step_kind(["helpdesk_evaluation"]) == ex.step_kind([]) == "evaluation"


def test_the_celery_executor_routes_the_real_graph_by_stage(monkeypatch, project):
    pytest.importorskip("dagster_celery", reason="the `scale` extra (make scale-test installs it)")
    from release_assets.definitions import build_defs
    from release_assets.manifest import load_manifests
    from release_assets_tests.conftest import local_resources

    monkeypatch.setenv(ex.EXECUTOR_ENV, "celery")
    defs = build_defs(load_manifests(project / "releases", project), project, local_resources(project, project / "s"))
    job = defs.resolve_job_def("helpdesk_release")
    assert job.executor_def.name == "release_celery"
    # every trained model of helpdesk, the judge of its replies included (it trains on the labelled set)
    assert ex._training_nodes(job) == {"helpdesk__intent_model", "helpdesk__judge", "helpdesk__vision_model"}


class _Result:
    def __init__(self, state: str, error: Exception | None = None) -> None:
        self.state, self.result = state, error

    def ready(self) -> bool:
        return self.state in ("SUCCESS", "FAILURE")

    def get(self):
        if self.state == "FAILURE":
            raise self.result
        return ["events"]


class WorkerLostError(Exception):  # named as billiard's: the check is by name, so celery need not be imported
    pass


def test_a_lost_worker_resubmits_up_to_the_bound():
    outcomes = iter([_Result("FAILURE", WorkerLostError("signal 9")), _Result("FAILURE", WorkerLostError("9"))])
    retried = []
    result = ex.RetryingResult(lambda: next(outcomes), retries=1, on_retry=lambda n, why: retried.append(n))
    assert not result.ready()  # lost: submitted again instead of reported
    assert retried == [2] and result.attempts == 2
    assert result.ready()  # lost again, past the bound: the loop sees the failure
    with pytest.raises(WorkerLostError):
        result.get()


def test_other_failures_and_successes_are_not_retried():
    ok = ex.RetryingResult(lambda: _Result("SUCCESS"), retries=3, on_retry=lambda n, why: None)
    assert ok.ready() and ok.get() == ["events"] and ok.attempts == 1
    failed = ex.RetryingResult(lambda: _Result("FAILURE", ValueError("bad input")), 3, lambda n, why: None)
    assert failed.ready() and failed.attempts == 1


def test_worker_config_agrees_with_what_the_executor_sends(monkeypatch):
    """The workers' deploy/celery-worker.yaml and the executor must share broker, backend and Celery settings."""
    config = yaml.safe_load((REPO / "deploy" / "celery-worker.yaml").read_text())["execution"]["config"]
    assert config["config_source"] == ex.WORKER_CONFIG
    assert config["broker"] == {"env": ex.BROKER_ENV} and config["backend"] == {"env": ex.BACKEND_ENV}


def test_the_postgres_instance_yaml_is_valid_dagster_config(monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    home = REPO / "deploy"
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", "postgresql+psycopg2://u@127.0.0.1:5432/x")
    monkeypatch.setenv("DAGSTER_MAX_CONCURRENT_RUNS", "3")
    config, _ = dagster_instance_config(str(home), config_filename="dagster.postgres.yaml")
    coordinator = config["run_coordinator"]
    assert coordinator["class"] == "QueuedRunCoordinator"
    limits = coordinator["config"]["tag_concurrency_limits"]
    assert limits == [{"key": "release_assets/release", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}
