"""The engines of the scale-out profile, started on 127.0.0.1 for one test (or benchmark) and stopped after it.

PostgreSQL, RabbitMQ and Redis are the machine's (CI starts them before a session); everything else is started
here: a moto server standing in for S3, an MLflow tracking server on a fresh Postgres database with its artifacts
in that S3, Celery workers (`dagster-celery worker start`), the Dagster daemon and webserver. Each process runs in
its own session (process group), so stopping it stops what it spawned (the celery worker under dagster-celery,
the code servers under the daemon and webserver), and only that.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, os.environ.get("RELEASE_ASSETS_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("RELEASE_ASSETS_TEST_PG_DB", "test")
RABBITMQ = os.environ.get("RELEASE_ASSETS_TEST_RABBITMQ", "pyamqp://guest:guest@127.0.0.1:5672//")
BUCKET = "release-assets-scale"
START_TIMEOUT = 180  # seconds for a server to answer; the machine is shared and loading definitions is slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def engines_missing() -> list[str]:
    """The machine's services this profile needs that are not answering."""
    wanted = {"PostgreSQL on 127.0.0.1:5432": 5432, "RabbitMQ on 127.0.0.1:5672": 5672}
    return [name for name, port in wanted.items() if not port_open(port)]


@contextlib.contextmanager
def postgres_database(prefix: str = "release_assets_scale") -> Iterator[str]:
    """A fresh, uniquely named database (so runs never collide), dropped at the end; yields its URL."""
    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"

    def admin(sql: str) -> None:
        conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_ADMIN_DB, connect_timeout=10)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    admin(f'CREATE DATABASE "{name}"')
    try:
        # The driver named: SQLAlchemy 2.1 picks psycopg (3) for a bare postgresql://, and dagster-postgres brings
        # psycopg2.
        yield f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        # WITH (FORCE): a server killed on the way out may still hold a connection.
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """``os.environ`` with ``values`` set, restored on exit (settings read from the environment, in this process)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def moto_s3(bucket: str = BUCKET) -> Iterator[str]:
    """A moto server on a free port with ``bucket`` created; yields its endpoint URL."""
    from bench.support.s3_moto import moto_s3 as server

    with server(bucket) as (endpoint, _):
        yield endpoint


class Service:
    """One started process (and its process group), its log file, and how to stop it."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path, cwd: Path = REPO) -> None:
        self.name = name
        self.log_path = logs / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM to the group, SIGKILL to what is left after ``timeout`` seconds."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError):  # children that outlived their leader
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._log.close()


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (from /proc)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def wait_http(url: str, service: Service, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.alive():
            raise RuntimeError(f"{service.name} exited ({service.proc.returncode}):\n{service.log()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=5).status_code < 500:
                return
        time.sleep(1)
    raise TimeoutError(f"{service.name}: {url} did not answer within {timeout:.0f} s:\n{service.log()}")


def wait_log(service: Service, text: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in service.log_path.read_text(errors="replace"):
            return
        if not service.alive():
            raise RuntimeError(f"{service.name} exited ({service.proc.returncode}):\n{service.log()}")
        time.sleep(1)
    raise TimeoutError(f"{service.name}: no {text!r} in its log within {timeout:.0f} s:\n{service.log()}")


def mlflow_server(
    db_url: str, artifacts: str, env: dict[str, str], logs: Path, wait: bool = True
) -> tuple[Service, str]:
    """An MLflow tracking server on Postgres, artifacts in S3 (clients write them directly: no proxying)."""
    port = free_port()
    args = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    args += ["--backend-store-uri", db_url, "--default-artifact-root", artifacts, "--no-serve-artifacts"]
    service = Service("mlflow", args, env, logs)
    url = f"http://127.0.0.1:{port}"
    if wait:
        wait_http(f"{url}/health", service)
    return service, url


def celery_worker(name: str, queues: list[str], env: dict[str, str], logs: Path, wait: bool = True) -> Service:
    """``dagster-celery worker start`` with the project's worker config, one task at a time (solo pool: the task
    runs in the worker process itself, so killing the worker kills the step)."""
    args = [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-n", name]
    args += ["-y", str(REPO / "deploy" / "celery-worker.yaml"), "-l", "INFO"]
    # One comma-separated -q: dagster-celery passes each as its own `-Q`, and celery keeps only the last of those.
    args += ["-q", ",".join(queues)]
    args += ["--", "--pool=solo", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    worker = Service(f"worker-{name}", args, env, logs)
    if wait:
        wait_log(worker, "ready.")
    return worker


def celery_process(worker: Service) -> int:
    """The pid of the ``celery worker`` process that ``dagster-celery worker start`` runs (and waits for)."""
    for pid in children(worker.proc.pid):
        if "celery" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
            return pid
    raise RuntimeError(f"{worker.name}: no celery process under pid {worker.proc.pid}")


def delete_queues(broker: str, queues: list[str]) -> None:
    """Remove this run's queues from the broker, so a shared RabbitMQ keeps nothing of it."""
    from kombu import Connection

    with Connection(broker, connect_timeout=10) as conn:
        channel = conn.channel()
        for q in queues:  # Celery declared each with an exchange of the same name
            with contextlib.suppress(Exception):
                channel.queue_delete(q)
            with contextlib.suppress(Exception):
                channel.exchange_delete(q)
