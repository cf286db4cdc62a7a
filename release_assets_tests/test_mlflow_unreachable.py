"""An MLflow tracking server that is down (nothing listens) or hung (accepts, never answers) fails a registry sync
and a promotion in seconds, with one line naming the server, instead of MLflow's retries for minutes (issue #31).

A promotion's ledger move stands (the ledger is the truth, MLflow mirrors it) and the line says the aliases follow
at the next sync. Every CLI run is a subprocess with a deadline, every in-process job runs in a thread with one:
a regression fails the test at the deadline instead of hanging the suite.
"""

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import dagster as dg
import pytest

from bench.support.bundles import publish_unit
from release_assets.record.ledger import replay
from release_assets.release.store import LocalReleaseStore
from release_assets_tests.conftest import local_resources

DEADLINE_S = 45  # a regression runs into it (MLflow's defaults took 498 s against a dead server)
FAST_S = 20  # what "in seconds" means here, process start and Dagster's imports included, on a busy machine
TIMEOUT_S = 2  # RELEASE_ASSETS_MLFLOW_TIMEOUT_S in these tests: the hung server's wait
MLFLOW_VARS = (
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _hung_server(healthy: bool = False) -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts every connection and never answers, until the block ends; ``healthy``:
    except ``GET /health``, answered 200 (a server that passes the preflight, then hangs)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.05)
    stop, held = threading.Event(), []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn = sock.accept()[0]
            except TimeoutError:
                continue
            held.append(conn)
            if healthy:
                conn.settimeout(1)
                with contextlib.suppress(OSError):
                    if conn.recv(4096).startswith(b"GET /health"):
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK")
                        conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        sock.close()


@pytest.fixture(params=["dead", "hung"])
def server(request) -> Iterator[tuple[str, str]]:
    """(tracking URI, the reason the line must give)."""
    if request.param == "dead":
        yield f"http://127.0.0.1:{_free_port()}", "connection refused"
    else:
        with _hung_server() as uri:
            yield uri, f"no answer within {TIMEOUT_S} s"


def _cli(uri: str, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "RELEASE_ASSETS_MLFLOW_TRACKING_URI": uri, "RELEASE_ASSETS_MLFLOW_TIMEOUT_S": str(TIMEOUT_S)}
    start = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "release_assets.cli.main", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"release-assets {' '.join(args)} against {uri} still running after {DEADLINE_S} s")
    return done, time.monotonic() - start


def _the_line(stderr: str, uri: str, reason: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if "MLflow tracking server" in line]
    assert len(lines) == 1, stderr[-3000:]
    assert f"MLflow tracking server {uri} unreachable: {reason} (RELEASE_ASSETS_MLFLOW_TRACKING_URI)" in lines[0]
    return lines[0]


def test_registry_sync_fails_in_seconds_naming_the_server(cli_env, server):
    uri, reason = server
    done, elapsed = _cli(uri, "registry", "sync", "iris")
    assert done.returncode != 0, done.stdout
    assert elapsed < FAST_S, f"{elapsed:.1f} s"
    assert _the_line(done.stderr, uri, reason).startswith("FAILED: MLflow tracking server")


def test_a_promotion_stands_in_the_ledger_and_says_the_aliases_are_pending(cli_env, tmp_path, server):
    uri, reason = server
    store = LocalReleaseStore(tmp_path / "store")
    version = publish_unit(store, "iris", "one")
    done, elapsed = _cli(uri, "promote", "iris", version, "--approved-by", "alice", "--reason", "ok")
    assert done.returncode != 0, done.stdout
    assert elapsed < FAST_S, f"{elapsed:.1f} s"
    line = _the_line(done.stderr, uri, reason)
    assert line.startswith(f"iris: champion none -> {version} (recorded in the ledger); MLflow tracking server")
    assert "follow the ledger at the next `release-assets registry sync`" in line
    assert replay(store.events("iris")).champion == version  # the ledger is the truth: the move stands


def _in_thread(fn):
    """``fn()``'s result, or a failed test once the deadline passes (the thread is left to finish on its own)."""
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    start = time.monotonic()
    thread.start()
    thread.join(DEADLINE_S)
    if thread.is_alive():
        pytest.fail(f"still running after {DEADLINE_S} s")
    return out[0], time.monotonic() - start


def _step_failure(result) -> str:
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return failure.step_failure_data.error.message


def test_the_sync_job_and_a_rollback_job_fail_with_the_line(project, tmp_path, monkeypatch):
    """The jobs the sensor and the launchpad run: the registry_sync job fails with the line; a rollback moves the
    ledger, then fails saying MLflow's aliases are pending."""
    from release_assets.definitions import build_defs
    from release_assets.manifest import load_manifests
    from release_assets.record.ledger import promote
    from release_assets.resources.registry import RegistryResource

    for var in MLFLOW_VARS:  # the registry sets them for this process; put them back after the test
        monkeypatch.delenv(var, raising=False)
    resources = local_resources(project, tmp_path / "store")
    uri = f"http://127.0.0.1:{_free_port()}"
    resources["registry"] = RegistryResource(tracking_uri=uri, artifact_root=str(tmp_path / "ml"), timeout_s=TIMEOUT_S)
    store = resources["store"].releases()
    v1, v2 = publish_unit(store, "iris", "one"), publish_unit(store, "iris", "two")
    promote(store, "iris", v1, "alice", "first")
    promote(store, "iris", v2, "bob", "second")
    defs = build_defs([m for m in load_manifests(project / "releases") if m.name == "iris"], project, resources)
    line = f"MLflow tracking server {uri} unreachable: connection refused (RELEASE_ASSETS_MLFLOW_TRACKING_URI)"

    with dg.instance_for_test() as instance:

        def run(job, config=None):
            job_def = defs.resolve_job_def(job)
            return job_def.execute_in_process(instance=instance, raise_on_error=False, run_config=config)

        synced, elapsed = _in_thread(lambda: run("registry_sync"))
        assert not synced.success and elapsed < FAST_S
        assert line in _step_failure(synced)

        config = {"ops": {"rollback": {"config": {"release": "iris", "requested_by": "carol", "reason": "p99"}}}}
        rolled, elapsed = _in_thread(lambda: run("rollback_release", config))
        assert not rolled.success and elapsed < FAST_S
        message = _step_failure(rolled)
        assert f"iris: champion {v2} -> {v1} (rolled back in the ledger); {line}" in message
    assert replay(store.events("iris")).champion == v1


def test_a_server_that_hangs_after_the_preflight_fails_the_sync_within_its_bounds(project, tmp_path, monkeypatch):
    """Past the preflight every MLflow request is bounded (RELEASE_ASSETS_MLFLOW_TIMEOUT_S, _MAX_ATTEMPTS): the
    first call waits 2 s once and the step fails with one line (MLflow's defaults: 120 s, 8 times)."""
    from release_assets.definitions import build_defs
    from release_assets.manifest import load_manifests
    from release_assets.resources.registry import RegistryResource

    for var in MLFLOW_VARS:
        monkeypatch.delenv(var, raising=False)
    resources = local_resources(project, tmp_path / "store")
    defs_for = [m for m in load_manifests(project / "releases") if m.name == "iris"]
    with _hung_server(healthy=True) as uri, dg.instance_for_test() as instance:
        resources["registry"] = RegistryResource(
            tracking_uri=uri, artifact_root=str(tmp_path / "ml"), timeout_s=TIMEOUT_S, max_attempts=1
        )
        job = build_defs(defs_for, project, resources).resolve_job_def("registry_sync")
        synced, elapsed = _in_thread(lambda: job.execute_in_process(instance=instance, raise_on_error=False))
    assert not synced.success and elapsed < FAST_S
    line = (
        f"MLflow tracking server {uri} unreachable: no answer within {TIMEOUT_S} s (RELEASE_ASSETS_MLFLOW_TRACKING_URI)"
    )
    assert _step_failure(synced).strip().endswith(line)


def test_a_canary_move_stands_and_says_the_aliases_are_pending(tmp_path):
    from release_assets.record.ledger import promote
    from release_assets.resources.registry import RegistryUnavailable
    from release_assets.rollout.canary import Rollout, abort, start
    from release_assets_tests.rollout.test_canary import SPEC

    store = LocalReleaseStore(tmp_path / "store")
    v1, v2 = publish_unit(store, "helpdesk", "one"), publish_unit(store, "helpdesk", "two")
    promote(store, "helpdesk", v1, "alice", "first champion")
    down = (
        "MLflow tracking server http://127.0.0.1:9 unreachable: connection refused (RELEASE_ASSETS_MLFLOW_TRACKING_URI)"
    )

    def registry():
        raise RegistryUnavailable(down)

    r = Rollout(store, "helpdesk", SPEC, tmp_path / "flags", registry)
    start(r, v2, "bob", "try it")
    assert replay(store.events("helpdesk")).canary.version == v2
    assert r.mirror_pending.startswith(down) and "`release-assets registry sync`" in r.mirror_pending
    abort(r, "carol", "enough")
    assert replay(store.events("helpdesk")).canary is None
    assert r.mirror_pending.startswith(down)
