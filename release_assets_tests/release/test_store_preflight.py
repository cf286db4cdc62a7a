"""An unusable store fails at once, in one line naming the endpoint, bucket or folder; S3 calls are bounded.

Every server here listens on 127.0.0.1 and stops inside its test: moto for a real S3, a socket that accepts and
never answers (the endpoint that used to take 372 s to fail), and a proxy in front of moto that answers 503 first.
"""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from release_assets.release.s3_store import S3ReleaseStore
from release_assets.release.store import LocalReleaseStore, StoreError
from release_assets.resources.artifact_store import ArtifactStore, store_unavailable

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
UNREACHABLE = "is unreachable: Could not connect to the endpoint URL (2 attempts)"
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _s3_store(tmp_path: Path, endpoint: str, bucket: str = "releases", **fields) -> ArtifactStore:
    return ArtifactStore(
        root=str(tmp_path / "store"),
        backend="s3",
        bucket=bucket,
        prefix="team/ra",
        endpoint_url=endpoint,
        **KEYS,
        **fields,
    )


def _preflight_error(store: ArtifactStore) -> tuple[str, float]:
    start = time.perf_counter()
    with pytest.raises(StoreError) as caught:
        store.preflight()
    elapsed = time.perf_counter() - start
    message = str(caught.value)
    print(f"\n[{elapsed:.2f} s] {message}")
    assert "\n" not in message
    return message, elapsed


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def hanging_endpoint():
    """Accepts every connection and never sends a byte back."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.1)  # so the thread notices `stop` promptly
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)  # keep it open, unanswered

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", held
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        server.close()


@pytest.fixture
def flaky_proxy(moto_endpoint):
    """A proxy in front of moto that answers 503 to the first ``state["fail"]`` requests, then forwards."""
    upstream = moto_endpoint.removeprefix("http://").split(":")
    state = {"fail": 0, "seen": []}

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            state["seen"].append(f"{self.command} {self.path.split('?')[0]}")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if state["fail"] > 0:
                state["fail"] -= 1
                error = b"<Error><Code>ServiceUnavailable</Code><Message>try again</Message></Error>"
                self.send_response(503)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(error)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(error)
                return
            conn = http.client.HTTPConnection(upstream[0], int(upstream[1]), timeout=10)
            try:
                conn.request(self.command, self.path, body=body, headers=dict(self.headers))
                answer = conn.getresponse()
                payload = answer.read()
            finally:
                conn.close()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _handle

        def log_message(self, *_args) -> None:  # keep test output to the messages that matter
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)


def _make_bucket(endpoint: str, bucket: str) -> None:
    client = ArtifactStore(backend="s3", bucket=bucket, endpoint_url=endpoint, **KEYS).s3_client(5, 5, 1)
    client.create_bucket(Bucket=bucket)


# -- S3 ----------------------------------------------------------------------------------------------------------
def test_endpoint_that_never_answers_fails_in_seconds(tmp_path, hanging_endpoint):
    endpoint, held = hanging_endpoint
    message, elapsed = _preflight_error(_s3_store(tmp_path, endpoint))  # default timeouts: 5 s, 30 s, 3 attempts
    assert message == f"S3 store s3://releases/team/ra at {endpoint} did not answer within 5 s (2 attempts)"
    assert elapsed < 15  # 2 x 5 s read timeout plus one jittered backoff of at most 1 s
    assert len(held) == 2  # exactly the two attempts, each on a fresh connection


def test_closed_port_fails_fast_naming_the_endpoint(tmp_path):
    endpoint = f"http://127.0.0.1:{_free_port()}"  # bound then released: nothing listens there
    message, elapsed = _preflight_error(_s3_store(tmp_path, endpoint))
    assert message == (f"S3 store s3://releases/team/ra at {endpoint} {UNREACHABLE}")
    assert elapsed < 5


def test_missing_bucket_is_named(tmp_path, moto_endpoint):
    message, _ = _preflight_error(_s3_store(tmp_path, moto_endpoint, bucket="no-such-bucket"))
    assert (
        message
        == f"S3 store s3://no-such-bucket/team/ra at {moto_endpoint} failed: bucket 'no-such-bucket' does not exist"
    )


def test_healthy_store_passes(tmp_path, moto_endpoint):
    _make_bucket(moto_endpoint, "healthy")
    store = _s3_store(tmp_path, moto_endpoint, bucket="healthy")
    store.preflight()
    store.releases().preflight()  # the run's own client passes too
    assert (tmp_path / "store").is_dir()  # build outputs stay local and were checked as well


def test_access_denied_is_named(tmp_path):
    from botocore.stub import Stubber

    client = ArtifactStore(backend="s3", bucket="b", endpoint_url="http://127.0.0.1:9", **KEYS).s3_client(1, 1, 1)
    with Stubber(client) as stub:
        stub.add_client_error("head_bucket", service_error_code="403", http_status_code=403)
        with pytest.raises(StoreError) as caught:
            S3ReleaseStore(client, "b", "p").preflight()
    print(f"\n{caught.value}")
    assert str(caught.value) == (
        "S3 store s3://b/p at http://127.0.0.1:9 failed: access denied (check the credentials and the bucket policy)"
    )


def test_one_503_is_retried_when_attempts_allow(tmp_path, flaky_proxy):
    endpoint, state = flaky_proxy
    _make_bucket(endpoint, "flaky")
    state["fail"], state["seen"] = 1, []
    _s3_store(tmp_path, endpoint, bucket="flaky", s3_max_attempts=2).preflight()
    assert state["seen"] == ["HEAD /flaky", "HEAD /flaky", "GET /flaky"]  # 503, retry, listing


def test_one_503_fails_with_a_single_attempt(tmp_path, flaky_proxy):
    endpoint, state = flaky_proxy
    _make_bucket(endpoint, "flaky1")
    state["fail"], state["seen"] = 1, []
    message, _ = _preflight_error(_s3_store(tmp_path, endpoint, bucket="flaky1", s3_max_attempts=1))
    answer = "failed: the endpoint answered 503 Service Unavailable (1 attempt)"
    assert message == f"S3 store s3://flaky1/team/ra at {endpoint} {answer}"
    assert state["seen"] == ["HEAD /flaky1"]


def test_store_operations_retry_transient_errors(tmp_path, flaky_proxy):
    """Not only the preflight: the run's client retries too (standard mode), up to ``s3_max_attempts`` in all."""
    endpoint, state = flaky_proxy
    _make_bucket(endpoint, "ops")
    state["fail"], state["seen"] = 2, []
    assert _s3_store(tmp_path, endpoint, bucket="ops", s3_max_attempts=3).releases().versions("iris") == []
    assert len(state["seen"]) == 3
    state["fail"] = 2
    with pytest.raises(Exception, match=r"ServiceUnavailable.*reached max retries: 1"):
        _s3_store(tmp_path, endpoint, bucket="ops", s3_max_attempts=2).releases().versions("iris")
    assert len(state["seen"]) == 3 + 2


# -- local -------------------------------------------------------------------------------------------------------
def test_local_root_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    message, _ = _preflight_error(ArtifactStore(root=str(blocker / "store")))
    assert message == f"local store at {blocker / 'store'} cannot be created: Not a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through any permission bits")
def test_local_root_that_is_read_only(tmp_path):
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o500)
    try:
        message, _ = _preflight_error(ArtifactStore(root=str(root)))
    finally:
        root.chmod(0o700)
    assert message == f"local store at {root} is not writable: Permission denied"


def test_local_preflight_leaves_nothing_behind(tmp_path):
    LocalReleaseStore(tmp_path / "fresh" / "store").preflight()
    assert list((tmp_path / "fresh" / "store").iterdir()) == []


# -- in a run ----------------------------------------------------------------------------------------------------
def _job_touching_store():
    ran: list[str] = []

    @dg.op(required_resource_keys={"store"})
    def train(context) -> None:
        ran.append(context.run_id)

    @dg.job
    def uses_store():
        train()

    return uses_store, ran


def test_a_run_fails_before_any_step_on_an_unreachable_store(tmp_path):
    endpoint = f"http://127.0.0.1:{_free_port()}"
    job, ran = _job_touching_store()
    start = time.perf_counter()
    result = job.execute_in_process(
        resources={"store": _s3_store(tmp_path, endpoint)}, raise_on_error=False, run_config=QUIET
    )
    elapsed = time.perf_counter() - start
    reason = store_unavailable(result)
    print(f"\n[{elapsed:.2f} s] {reason}")
    assert not result.success and ran == []
    assert reason == (f"S3 store s3://releases/team/ra at {endpoint} {UNREACHABLE}")


def test_a_run_on_a_usable_store_runs(tmp_path):
    job, ran = _job_touching_store()
    result = job.execute_in_process(resources={"store": ArtifactStore(root=str(tmp_path / "store"))}, run_config=QUIET)
    assert result.success and len(ran) == 1
    assert store_unavailable(result) is None
