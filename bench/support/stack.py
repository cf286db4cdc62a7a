"""The whole scale-out profile for one test or benchmark: a fresh Postgres database, S3 on moto, an MLflow server,
Celery workers, the daemon and the webserver, configured by deploy/dagster.postgres.yaml and the environment only.

``ScaleStack`` is a context manager: everything it started is stopped (and the database dropped, the broker's
queues deleted) on the way out, whatever happened inside.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.support import services as sv

LOCATION = "release_assets.definitions"
RELEASE_TAG = "release_assets/release"  # the run queue's per-release limit (deploy/dagster.postgres.yaml)
# Variables of the caller's shell that must not reach the stack: it runs on its own settings alone.
LEAKED = ("RELEASE_ASSETS_", "DAGSTER", "AWS_", "MLFLOW", "PYTEST", "CELERY")


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKED)}
    # dagster-celery runs `celery` from PATH; the venv's, whether or not it is activated.
    env["PATH"] = f"{sv.BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def embedded_env(project: Path, root: Path) -> dict[str, str]:
    """The embedded defaults (sqlite instance, local store, sqlite MLflow, in-process executor) under ``root``."""
    (root / "home").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sv.REPO / "dagster.yaml", root / "home" / "dagster.yaml")
    return {
        **base_env(),
        "DAGSTER_HOME": str(root / "home"),
        "RELEASE_ASSETS_PROJECT_ROOT": str(project),
        "RELEASE_ASSETS_STORE_ROOT": str(root / "store"),
        "RELEASE_ASSETS_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "RELEASE_ASSETS_MLFLOW_ARTIFACT_ROOT": str(root / "mlflow-artifacts"),
    }


class ScaleStack(contextlib.ExitStack):
    def __init__(self, project: Path, root: Path, workers: int = 2, max_concurrent_runs: int = 2) -> None:
        super().__init__()
        self.project, self.root, self.n_workers, self.max_runs = project, root, workers, max_concurrent_runs
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.prefix = f"scale-{uuid.uuid4().hex[:8]}-"
        self.queues = [self.prefix + "training", self.prefix + "evaluation"]
        self.workers: list[sv.Service] = []

    def __enter__(self) -> ScaleStack:
        super().__enter__()
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        started = time.perf_counter()
        self.db_url = self.enter_context(sv.postgres_database())
        # MLflow's own database: both have a `runs` table.
        mlflow_db = self.enter_context(sv.postgres_database("release_assets_scale_mlflow"))
        self.s3_endpoint = self.enter_context(sv.moto_s3())
        home = self.root / "home"
        home.mkdir(exist_ok=True)
        shutil.copyfile(sv.REPO / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
        # One code server that the webserver and the daemon share (as a Helm user deployment is shared): each
        # loading the definitions itself costs a process and ~20 s of CPU on this machine.
        code_port = sv.free_port()
        (self.root / "workspace.yaml").write_text(
            f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {code_port}\n"
            f"      location_name: {LOCATION}\n"
        )
        aws = {"AWS_ACCESS_KEY_ID": "ci", "AWS_SECRET_ACCESS_KEY": "ci", "AWS_DEFAULT_REGION": "us-east-1"}
        self.env = {
            **base_env(),
            **aws,
            "DAGSTER_HOME": str(home),
            "DAGSTER_POSTGRES_URL": self.db_url,
            "DAGSTER_MAX_CONCURRENT_RUNS": str(self.max_runs),
            "RELEASE_ASSETS_PROJECT_ROOT": str(self.project),
            # The build cache and the IO manager's references: one filesystem every worker sees (deploy/README.md).
            "RELEASE_ASSETS_STORE_ROOT": str(self.root / "store"),
            "RELEASE_ASSETS_STORE_BACKEND": "s3",
            "RELEASE_ASSETS_S3_BUCKET": sv.BUCKET,
            "RELEASE_ASSETS_S3_ENDPOINT_URL": self.s3_endpoint,
            "RELEASE_ASSETS_S3_REGION": "us-east-1",
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
            "RELEASE_ASSETS_MLFLOW_ARTIFACT_ROOT": f"s3://{sv.BUCKET}/mlflow",
            "RELEASE_ASSETS_EXECUTOR": "celery",
            "RELEASE_ASSETS_CELERY_BROKER": sv.RABBITMQ,
            "RELEASE_ASSETS_CELERY_BACKEND": "rpc://",
            "RELEASE_ASSETS_CELERY_QUEUE_PREFIX": self.prefix,
        }
        self.callback(sv.delete_queues, sv.RABBITMQ, self.queues)
        mlflow, self.mlflow_url = sv.mlflow_server(
            mlflow_db, f"s3://{sv.BUCKET}/mlflow", self.env, self.logs, wait=False
        )
        self.callback(mlflow.stop)
        # Everything starts at once; each is waited for below (the MLflow server is needed only by runs).
        self.env["RELEASE_ASSETS_MLFLOW_TRACKING_URI"] = self.mlflow_url
        code = sv.Service(
            "code-server",
            [str(sv.BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(code_port),
             "-m", LOCATION, "-a", "defs", "-d", str(sv.REPO), "--location-name", LOCATION],
            self.env,
            self.logs,
        )  # fmt: skip
        self.callback(code.stop)
        for i in range(self.n_workers):
            worker = sv.celery_worker(f"w{i + 1}", self.queues, self.env, self.logs, wait=False)
            self.callback(worker.stop)
            self.workers.append(worker)
        # The webserver and the daemon load the location once when they start: only once the code server serves.
        sv.wait_log(code, "Started Dagster code proxy server")
        port = sv.free_port()
        self.graphql_port = port
        ws = str(self.root / "workspace.yaml")
        web = sv.Service("webserver", [str(sv.BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", ws],
                         self.env, self.logs)  # fmt: skip
        self.callback(web.stop)
        daemon = sv.Service("daemon", [str(sv.BIN / "dagster-daemon"), "run", "-w", ws], self.env, self.logs)
        self.callback(daemon.stop)
        self.daemon = daemon
        sv.wait_http(f"{self.mlflow_url}/health", mlflow)
        for worker in self.workers:
            sv.wait_log(worker, "ready.")
        sv.wait_http(f"http://127.0.0.1:{port}/server_info", web)
        self._wait_location_loaded(web)
        self.stop_sensors()
        self.startup_s = time.perf_counter() - started

    # --- GraphQL -----------------------------------------------------------------------------------------------
    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(
            f"http://127.0.0.1:{self.graphql_port}/graphql",
            json={"query": query, "variables": variables or {}},
            timeout=60,
        )
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    def _wait_location_loaded(self, web: sv.Service, timeout: float = sv.START_TIMEOUT) -> None:
        query = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
            locationOrLoadError { __typename } } } } }"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entries = self.graphql(query)["workspaceOrError"].get("locationEntries", [])
            if entries and all(
                e["loadStatus"] == "LOADED" and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
                for e in entries
            ):
                return
            time.sleep(1)
        raise TimeoutError(f"code location not loaded within {timeout:.0f} s:\n{web.log()}")

    def stop_sensors(self) -> list[str]:
        """Stop every sensor of the location: the stack measures the runs it launches, and code_change_sensor
        would start `release_all` whenever a watched file of this checkout changes while it runs."""
        query = """query Sensors($selector: RepositorySelector!) { sensorsOrError(repositorySelector: $selector) {
            ... on Sensors { results { id name } } } }"""
        stop = """mutation Stop($id: String) { stopSensor(id: $id) {
            __typename ... on PythonError { message } } }"""
        selector = {"repositoryName": "__repository__", "repositoryLocationName": LOCATION}
        sensors = self.graphql(query, {"selector": selector})["sensorsOrError"]["results"]
        for sensor in sensors:
            result = self.graphql(stop, {"id": sensor["id"]})["stopSensor"]
            assert result["__typename"] == "StopSensorMutationResult", result
        return [s["name"] for s in sensors]

    def launch(self, job: str, tags: dict[str, str]) -> str:
        """Submit a run through the webserver's GraphQL API (``launchRun``): it goes into the daemon's queue."""
        from dagster_graphql import DagsterGraphQLClient

        client = DagsterGraphQLClient("127.0.0.1", port_number=self.graphql_port, timeout=120)
        return client.submit_job_execution(job, tags=tags)

    def runs(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        query = """query Runs($ids: [String!]) {
          runsOrError(filter: {runIds: $ids}) {
            ... on Runs { results { runId jobName status startTime endTime tags { key value } } }
          }
        }"""
        results = self.graphql(query, {"ids": run_ids})["runsOrError"]["results"]
        return {r["runId"]: r for r in results}

    def wait_runs(self, run_ids: list[str], timeout: float, on_poll=None) -> dict[str, dict[str, Any]]:
        """Poll until every run is over (bounded); ``on_poll`` is called on each poll (e.g. to kill a worker)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if on_poll is not None:
                on_poll()
            runs = self.runs(run_ids)
            if len(runs) == len(run_ids) and all(
                r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs.values()
            ):
                return runs
            time.sleep(1)
        raise TimeoutError(f"runs not over within {timeout:.0f} s: {self.runs(run_ids)}\n{self.daemon.log()}")

    def instance(self):
        """The stack's Dagster instance (Postgres), for reading event logs in this process."""
        import dagster as dg

        with sv.environment(DAGSTER_POSTGRES_URL=self.db_url, DAGSTER_MAX_CONCURRENT_RUNS=str(self.max_runs)):
            return dg.DagsterInstance.from_config(str(self.root / "home"))

    def s3(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id="ci",
            aws_secret_access_key="ci",
            region_name="us-east-1",
        )
