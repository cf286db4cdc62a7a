"""Both release stores behind one interface: local folder and S3 through a real S3 endpoint on 127.0.0.1."""

import json
import multiprocessing
import socket
from pathlib import Path

import pytest

from release_assets.release.store import LocalReleaseStore, ReleaseStore, S3ReleaseStore, StoreError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's ThreadedMotoServer: a real S3 protocol endpoint, spoken to by boto3 over HTTP."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_client(endpoint: str):
    from dagster_aws.s3 import S3Resource

    return S3Resource(
        endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    ).get_client()


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> ReleaseStore:
    if request.param == "local":
        return LocalReleaseStore(tmp_path / "store")
    endpoint = request.getfixturevalue("s3_endpoint")
    client = s3_client(endpoint)
    bucket = f"b-{abs(hash(tmp_path)) % 10**8}"
    client.create_bucket(Bucket=bucket)
    return S3ReleaseStore(client, bucket, prefix="team/release_assets")


def _bundle(tmp_path: Path, content: bytes = b"bundle-bytes") -> Path:
    path = tmp_path / "bundle.tar.gz"
    path.write_bytes(content)
    return path


def test_round_trip(store, tmp_path):
    assert store.publish("iris", "v1", _bundle(tmp_path), {"version": "v1", "gates": []})
    assert store.is_published("iris", "v1")
    assert store.versions("iris") == ["v1"]
    assert store.latest("iris") == "v1"
    assert store.manifest("iris", "v1")["version"] == "v1"
    fetched = store.fetch_bundle("iris", "v1", tmp_path / "fetched.tar.gz")
    assert fetched.read_bytes() == b"bundle-bytes"
    assert store.publish("iris", "v1", _bundle(tmp_path), {"version": "v1"}) is False  # idempotent


def test_missing_bundle_is_a_clear_error(store, tmp_path):
    with pytest.raises(StoreError, match="v9"):
        store.fetch_bundle("iris", "v9", tmp_path / "x")


def test_interrupted_publish_is_invisible_and_a_retry_completes(store, tmp_path, monkeypatch):
    """Killed after the bundle, before the manifest: no version is visible; the retry publishes it."""

    def die(*_args, **_kwargs):
        raise KeyboardInterrupt("killed between bundle and manifest")

    monkeypatch.setattr(store, "_put_manifest", die)
    with pytest.raises(KeyboardInterrupt):
        store.publish("iris", "v2", _bundle(tmp_path), {"version": "v2"})
    assert store.versions("iris") == []
    assert store.latest("iris") is None
    monkeypatch.undo()
    assert store.publish("iris", "v2", _bundle(tmp_path), {"version": "v2"})
    assert store.versions("iris") == ["v2"]


def test_s3_layout_uses_prefix(s3_endpoint, tmp_path):
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket="layout")
    store = S3ReleaseStore(client, "layout", prefix="p")
    store.publish("helpdesk", "abc", _bundle(tmp_path), {"version": "abc"})
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="layout")["Contents"])
    assert keys == [
        "p/releases/helpdesk/abc/bundle.tar.gz",
        "p/releases/helpdesk/abc/manifest.json",
        "p/releases/helpdesk/latest.json",
    ]
    assert store.bundle_uri("helpdesk", "abc") == "s3://layout/p/releases/helpdesk/abc/bundle.tar.gz"


def _append_many(args) -> None:
    kind, location, writer, n = args
    if kind == "local":
        store = LocalReleaseStore(Path(location))
    else:
        endpoint, bucket = location
        store = S3ReleaseStore(s3_client(endpoint), bucket)
    for i in range(n):
        store.append_event("iris", {"time": f"2026-01-01T00:00:{i:02d}", "writer": writer, "i": i, "action": "x"})


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_concurrent_appends_from_processes_lose_nothing(kind, tmp_path, request):
    if kind == "local":
        location = str(tmp_path / "store")
        reader = LocalReleaseStore(Path(location))
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        s3_client(endpoint).create_bucket(Bucket="ledger")
        location = (endpoint, "ledger")
        reader = S3ReleaseStore(s3_client(endpoint), "ledger")
    writers, per_writer = 6, 15
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(writers) as pool:
        pool.map(_append_many, [(kind, location, w, per_writer) for w in range(writers)])
    events = reader.events("iris")
    assert len(events) == writers * per_writer
    assert {(e["writer"], e["i"]) for e in events} == {(w, i) for w in range(writers) for i in range(per_writer)}
    if kind == "local":
        lines = (Path(location) / "ledger" / "iris.jsonl").read_text().splitlines()
        assert all(json.loads(line) for line in lines)  # no torn lines


KILL_SCRIPT = """
import os, sys
from pathlib import Path
from release_assets.release.store import LocalReleaseStore, S3ReleaseStore
from release_assets_tests.release.test_store import s3_client

kind, location, bundle = sys.argv[1], sys.argv[2], Path(sys.argv[3])
store = LocalReleaseStore(Path(location)) if kind == "local" else S3ReleaseStore(s3_client(location), "killed")
store._put_manifest = lambda *a, **k: os._exit(9)  # the process dies between bundle and manifest
store.publish("iris", "v7", bundle, {"version": "v7"})
"""


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_killed_publish_leaves_nothing_visible_and_a_retry_succeeds(kind, tmp_path, request):
    import subprocess
    import sys

    if kind == "local":
        location = str(tmp_path / "store")
        store = LocalReleaseStore(Path(location))
    else:
        location = request.getfixturevalue("s3_endpoint")
        s3_client(location).create_bucket(Bucket="killed")
        store = S3ReleaseStore(s3_client(location), "killed")
    bundle = _bundle(tmp_path)
    repo = Path(__file__).resolve().parents[2]
    killed = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, kind, location, str(bundle)], cwd=repo, capture_output=True, timeout=120
    )
    assert killed.returncode == 9, killed.stderr.decode()[-2000:]
    assert store.versions("iris") == [] and store.latest("iris") is None
    assert store.publish("iris", "v7", bundle, {"version": "v7"})
    assert store.versions("iris") == ["v7"] and store.latest("iris") == "v7"
