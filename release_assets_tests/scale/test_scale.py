"""The scale-out profile end to end, on this machine (``make scale-test``; skipped by ``make test``).

Postgres storage and the run queue (deploy/dagster.postgres.yaml), two Celery workers, an MLflow tracking server on
Postgres with its artifacts in S3 (moto), the release store on the same S3. Both releases are launched at once
through GraphQL into the daemon's queue, with a second iris run the per-release limit must hold back; the worker
training helpdesk's intent model is SIGKILLed mid-step. The published versions must be the very versions the
embedded path (in-process, sqlite, local folders) publishes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bench.support import services as sv
from bench.support.stack import RELEASE_TAG, ScaleStack, embedded_env

pytestmark = pytest.mark.skipif(
    os.environ.get("RELEASE_ASSETS_SCALE_TEST") != "1",
    reason="needs PostgreSQL and RabbitMQ on 127.0.0.1 and ~5 min: run `make scale-test`",
)

RELEASES = ("iris", "helpdesk")
KILLED_STEP = "helpdesk__intent_model"
RUN_TIMEOUT = 480  # seconds for both queued runs, a worker kill and the retry included
EMBEDDED_TIMEOUT = 420


def _embedded_release(project: Path, root: Path) -> subprocess.Popen:
    env = embedded_env(project, root)
    cli = str(sv.BIN / "release-assets")
    # Publish, then the follow-up that registers in MLflow (release runs never touch it).
    cmd = ["bash", "-c", f"{cli} release {' '.join(RELEASES)} && {cli} registry sync"]
    log = open(root / "embedded.log", "wb")  # noqa: SIM115  (the child holds it; closed with the process)
    return subprocess.Popen(cmd, env=env, cwd=sv.REPO, stdout=log, stderr=subprocess.STDOUT)


class WorkerKiller:
    """Kills (SIGKILL) the worker that runs ``step`` once the step has started, and remembers which it was."""

    def __init__(self, stack: ScaleStack, run_id: str, step: str) -> None:
        self.stack, self.run_id, self.step = stack, run_id, step
        self.instance = stack.instance()
        self.killed: str | None = None

    def __call__(self) -> None:
        import dagster as dg

        if self.killed is not None:
            return
        logs = self.instance.all_logs(self.run_id)
        hosts = [
            e.dagster_event.engine_event_data.metadata["Celery worker"].value
            for e in logs
            if e.dagster_event is not None
            and e.dagster_event.event_type == dg.DagsterEventType.ENGINE_EVENT
            and e.step_key == self.step
            and "Celery worker" in (e.dagster_event.engine_event_data.metadata or {})
        ]
        started = any(e.dagster_event_type == dg.DagsterEventType.STEP_START and e.step_key == self.step for e in logs)
        if not (hosts and started):
            return
        name = hosts[-1].split("@")[0]
        worker = next(w for w in self.stack.workers if w.name == f"worker-{name}")
        time.sleep(0.5)  # inside the step: resources are up, the trainer is importing or training
        os.kill(sv.celery_process(worker), signal.SIGKILL)
        self.killed = hosts[-1]


def test_both_releases_through_the_queue_on_celery_match_the_embedded_path(tiny_project: Path, tmp_path: Path):
    missing = sv.engines_missing()
    assert not missing, f"the machine's services are not running: {missing}"
    # The embedded path, cold, in the background while the stack starts.
    embedded = _embedded_release(tiny_project, tmp_path / "embedded")
    try:
        with ScaleStack(tiny_project, tmp_path / "scale") as stack:
            tags = {"release_assets/scale_test": stack.prefix}
            run_ids = {name: stack.launch(f"{name}_release", {**tags, RELEASE_TAG: name}) for name in RELEASES}
            # A second iris run at once: the queue has room for it, but not the per-release limit.
            again = stack.launch("iris_release", {**tags, RELEASE_TAG: "iris"})
            killer = WorkerKiller(stack, run_ids["helpdesk"], KILLED_STEP)
            runs = stack.wait_runs([*run_ids.values(), again], RUN_TIMEOUT, on_poll=killer)
            logs = {w.name: w.log() for w in stack.workers}
            assert all(r["status"] == "SUCCESS" for r in runs.values()), (runs, stack.daemon.log(), logs)
            queue = _published(stack)
            events = stack.instance().all_logs(run_ids["helpdesk"])
            # The registry follows the ledger in S3: the sync job, through the queue and a Celery worker.
            sync = stack.launch("registry_sync", tags)
            synced = stack.wait_runs([sync], RUN_TIMEOUT)
            assert synced[sync]["status"] == "SUCCESS", (synced, stack.daemon.log(), [w.log() for w in stack.workers])
            mlflow_aliases = _aliases(stack.mlflow_url, f"s3://{sv.BUCKET}/mlflow", stack.env)
            queues_used = _queues_by_step(events)
        assert embedded.wait(EMBEDDED_TIMEOUT) == 0, (tmp_path / "embedded.log").read_text()[-4000:]
    finally:
        if embedded.poll() is None:
            embedded.kill()
            embedded.wait(30)

    # Reproducible across executors: the same bytes, so the same versions, as in-process on local folders.
    from release_assets.release.store import LocalReleaseStore

    local = LocalReleaseStore(tmp_path / "embedded" / "store")
    assert queue["versions"] == {name: local.latest(name) for name in RELEASES}, queue
    # The ledger lives in S3: one object per event, the first a `published` of that version.
    for name, version in queue["versions"].items():
        first = queue["ledgers"][name][0]
        assert (first["action"], first["to_version"]) == ("published", version), queue["ledgers"][name]
    # MLflow's aliases on the server agree with the ledger, and with the embedded path's MLflow.
    embedded_aliases = _aliases(
        f"sqlite:///{tmp_path / 'embedded' / 'mlflow.db'}", str(tmp_path / "embedded" / "mlflow-artifacts"), {}
    )
    assert mlflow_aliases == embedded_aliases, (mlflow_aliases, embedded_aliases)
    assert {n: a.get("candidate") for n, a in mlflow_aliases.items()} == queue["versions"]

    # The two releases ran at once (the queue allows two runs, one per release).
    iris, helpdesk = (runs[run_ids[n]] for n in RELEASES)
    assert iris["startTime"] < helpdesk["endTime"] and helpdesk["startTime"] < iris["endTime"], runs
    # ... but never two runs of one release (tag release_assets/release, limit 1): the second iris run waited.
    assert runs[again]["startTime"] >= iris["endTime"], (runs[again], iris)
    assert {t["key"]: t["value"] for t in helpdesk["tags"]}[RELEASE_TAG] == "helpdesk"
    # Steps went to the queue of their kind.
    assert queues_used[KILLED_STEP] == stack.prefix + "training", queues_used
    assert queues_used["helpdesk__chain_evaluation"] == stack.prefix + "evaluation", queues_used

    # The killed worker's step ran again on the other worker, and the release still published the same version.
    assert killer.killed is not None, "the training step finished before it could be killed"
    hosts = _worker_hosts(events, KILLED_STEP)
    assert len(hosts) >= 2 and hosts[0] == killer.killed and hosts[-1] != killer.killed, hosts


def _published(stack: ScaleStack) -> dict:
    from release_assets.release.s3_store import S3ReleaseStore

    store = S3ReleaseStore(stack.s3(), sv.BUCKET, "release_assets")
    versions = {name: store.latest(name) for name in RELEASES}
    ledgers = {name: store.read_ledger(name).events for name in RELEASES}
    return {"versions": versions, "ledgers": ledgers}


def _aliases(tracking_uri: str, artifact_root: str, env: dict[str, str]) -> dict[str, dict[str, str]]:
    from release_assets.resources.registry import Registry

    names = ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    with sv.environment(**{k: env[k] for k in names if k in env}):
        registry = Registry(tracking_uri, artifact_root)
        return {name: registry.aliases(name) for name in RELEASES}


def _worker_hosts(events, step: str) -> list[str]:
    """The Celery workers that started ``step``, in order (dagster-celery's "Executing steps" engine event)."""
    import dagster as dg

    return [
        e.dagster_event.engine_event_data.metadata["Celery worker"].value
        for e in events
        if e.step_key == step
        and e.dagster_event is not None
        and e.dagster_event.event_type == dg.DagsterEventType.ENGINE_EVENT
        and "Celery worker" in (e.dagster_event.engine_event_data.metadata or {})
    ]


def _queues_by_step(events) -> dict[str, str]:
    """Step key -> the queue the executor sent it to (its "Celery queue" log line)."""
    out = {}
    for e in events:
        if e.step_key and e.user_message.startswith(f"step {e.step_key}: Celery queue "):
            out[e.step_key] = e.user_message.rsplit(" ", 1)[-1]
    return out
