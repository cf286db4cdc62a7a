"""The failed-gate sensor: a concise summary in the run's event log and, when configured, a webhook POST."""

import dagster as dg
import pytest

from release_assets.definitions import build_defs
from release_assets.manifest import load_manifests
from release_assets.manifest.overrides import apply_overrides
from release_assets.sensors import build_failed_gate_sensor
from release_assets_tests.conftest import local_resources
from release_assets_tests.webhooks import webhook_receiver

failed_gate_sensor = build_failed_gate_sensor()


@pytest.fixture
def webhook():
    with webhook_receiver() as receiver:
        yield receiver


def _failed_run(project, tmp_path, instance):
    [iris] = [m for m in load_manifests(project / "releases") if m.name == "iris"]
    bad = apply_overrides(iris, ["gates.classifier.accuracy.min=0.999"])
    defs = build_defs([bad], project, local_resources(project, tmp_path / "store"))
    result = defs.resolve_job_def("release_all").execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    return instance.get_run_by_id(result.run_id)


def _context(instance, run):
    [failure] = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    return dg.build_run_status_sensor_context(
        sensor_name="failed_gate_sensor",
        dagster_event=failure.dagster_event,
        dagster_instance=instance,
        dagster_run=run,
    ).for_run_failure()


def test_failed_gate_is_summarised_in_the_run_log_and_posted(project, tmp_path, webhook, monkeypatch):
    url, received = webhook
    monkeypatch.setenv("RELEASE_ASSETS_GATE_WEBHOOK", url)
    with dg.instance_for_test() as instance:
        run = _failed_run(project, tmp_path, instance)
        failed_gate_sensor(_context(instance, run))
        engine = [
            r.dagster_event.message for r in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
        ]
    summary = next(m for m in engine if m and m.startswith("held back by gates"))
    assert "iris: accuracy_gate on iris/classifier_report (ERROR): accuracy = " in summary
    assert "violates the gate >= 0.999" in summary
    [payload] = received
    assert payload["run_id"] == run.run_id
    assert [(g["release"], g["check"]) for g in payload["failed_gates"]] == [("iris", "accuracy_gate")]


def test_webhook_is_off_by_default(project, tmp_path, webhook, monkeypatch):
    _, received = webhook
    monkeypatch.delenv("RELEASE_ASSETS_GATE_WEBHOOK", raising=False)
    with dg.instance_for_test() as instance:
        run = _failed_run(project, tmp_path, instance)
        failed_gate_sensor(_context(instance, run))
    assert received == []


def test_an_unreachable_webhook_is_logged_not_raised(project, tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("RELEASE_ASSETS_GATE_WEBHOOK", f"http://127.0.0.1:{port}/hook")
    with dg.instance_for_test() as instance:
        run = _failed_run(project, tmp_path, instance)
        failed_gate_sensor(_context(instance, run))  # must not raise
        engine = [
            r.dagster_event.message for r in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
        ]
    assert sum(1 for m in engine if m and m.startswith("held back by gates")) == 1


def test_the_sensor_can_launch_the_triage_of_every_release_with_a_chain(project, tmp_path):
    defs = build_defs(load_manifests(project / "releases"), project, local_resources(project, tmp_path / "store"))
    sensor = defs.resolve_sensor_def("failed_gate_sensor")
    assert {job.name for job in sensor.jobs} == {"helpdesk_triage", "kbqa_triage"}  # iris has no chain to triage
