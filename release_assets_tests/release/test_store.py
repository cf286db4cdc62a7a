"""Both release stores behind one interface: local folder and S3 through a real S3 endpoint on 127.0.0.1."""

import hashlib
import json
import multiprocessing
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from release_assets.release.s3_store import S3ReleaseStore
from release_assets.release.store import (
    GENESIS,
    LedgerError,
    LocalReleaseStore,
    ReleaseStore,
    StoreError,
    event_hash,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's ThreadedMotoServer: a real S3 protocol endpoint, spoken to by boto3 over HTTP.

    moto checks ``If-None-Match``/``If-Match`` and then writes, as two steps, on a thread per request; S3 does both
    atomically. One lock around moto's PutObject gives the tests S3's guarantee, so the concurrent-append tests
    exercise the ledger's protocol rather than moto's timing.
    """
    from moto.s3.responses import S3Response
    from moto.server import ThreadedMotoServer

    put_object, lock = S3Response.put_object, threading.Lock()

    def atomic_put_object(self):
        with lock:
            return put_object(self)

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(S3Response, "put_object", atomic_put_object)
        server.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stop()


def s3_client(endpoint: str):
    import boto3  # the package's own S3 client is boto3's too (core/s3_client.py); dagster-aws is not a dependency

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


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
    assert store.publish("iris", "00000000000000a1", _bundle(tmp_path), {"version": "00000000000000a1", "gates": []})
    assert store.is_published("iris", "00000000000000a1")
    assert store.versions("iris") == ["00000000000000a1"]
    assert store.latest("iris") == "00000000000000a1"
    assert store.manifest("iris", "00000000000000a1")["version"] == "00000000000000a1"
    fetched = store.fetch_bundle("iris", "00000000000000a1", tmp_path / "fetched.tar.gz")
    assert fetched.read_bytes() == b"bundle-bytes"
    assert (
        store.publish("iris", "00000000000000a1", _bundle(tmp_path), {"version": "00000000000000a1"}) is False
    )  # idempotent


def test_files_beside_a_bundle_are_written_before_its_manifest_and_listed(store, tmp_path):
    """A signature and attestations travel beside the bundle (provenance/): written with it, before the manifest
    makes the version visible, listed and read back by name; a name that could leave the folder is refused."""
    beside = {"bundle.sig": b"sig", "provenance.intoto.json": b"{}"}
    assert store.publish("iris", "00000000000000b2", _bundle(tmp_path), {"version": "00000000000000b2"}, beside=beside)
    assert store.names_beside("iris", "00000000000000b2") == ["bundle.sig", "provenance.intoto.json"]
    assert store.beside("iris", "00000000000000b2", "bundle.sig") == b"sig"
    assert store.beside("iris", "00000000000000b2", "test-result.intoto.json") is None
    store.put_beside("iris", "00000000000000b2", "verification.prod.intoto.json", b"vsa")
    assert store.names_beside("iris", "00000000000000b2")[-1] == "verification.prod.intoto.json"
    for bad in ("../x", "bundle.tar.gz", "manifest.json", "A.sig", ""):
        with pytest.raises(StoreError, match="cannot be kept beside a bundle"):
            store.put_beside("iris", "00000000000000b2", bad, b"x")


def test_two_publishers_of_one_version_at_once_publish_it_once(tmp_path, monkeypatch):
    """Two runs that built the same content race to publish it: exactly one is told it published, the other that
    the version already exists, and the manifest is the publisher's (the local store locks the version's folder)."""
    store = LocalReleaseStore(tmp_path / "store")
    checked = store.is_published

    def slow_check(name: str, version: str) -> bool:
        found = checked(name, version)
        time.sleep(0.3)  # without the lock, the other publisher checks in this window and also finds nothing
        return found

    monkeypatch.setattr(store, "is_published", slow_check)
    version, results = "00000000000000c3", {}

    def publish(run: str) -> None:
        (tmp_path / run).mkdir()
        results[run] = store.publish("iris", version, _bundle(tmp_path / run), {"version": version, "run": run})

    threads = [threading.Thread(target=publish, args=(run,)) for run in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results.values()) == [False, True]
    [winner] = [run for run, published in results.items() if published]
    assert store.manifest("iris", version)["run"] == winner


def test_missing_bundle_is_a_clear_error(store, tmp_path):
    with pytest.raises(StoreError, match="v9"):
        store.fetch_bundle("iris", "v9", tmp_path / "x")


def test_interrupted_publish_is_invisible_and_a_retry_completes(store, tmp_path, monkeypatch):
    """Killed after the bundle, before the manifest: no version is visible; the retry publishes it."""

    def die(*_args, **_kwargs):
        raise KeyboardInterrupt("killed between bundle and manifest")

    monkeypatch.setattr(store, "_put_manifest", die)
    with pytest.raises(KeyboardInterrupt):
        store.publish("iris", "00000000000000a2", _bundle(tmp_path), {"version": "00000000000000a2"})
    assert store.versions("iris") == []
    assert store.latest("iris") is None
    monkeypatch.undo()
    assert store.publish("iris", "00000000000000a2", _bundle(tmp_path), {"version": "00000000000000a2"})
    assert store.versions("iris") == ["00000000000000a2"]


def test_s3_layout_uses_prefix(s3_endpoint, tmp_path):
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket="layout")
    store = S3ReleaseStore(client, "layout", prefix="p")
    store.publish("helpdesk", "0000000000000abc", _bundle(tmp_path), {"version": "0000000000000abc"})
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="layout")["Contents"])
    assert keys == [
        "p/releases/helpdesk/0000000000000abc/bundle.tar.gz",
        "p/releases/helpdesk/0000000000000abc/manifest.json",
        "p/releases/helpdesk/latest.json",
    ]
    assert (
        store.bundle_uri("helpdesk", "0000000000000abc")
        == "s3://layout/p/releases/helpdesk/0000000000000abc/bundle.tar.gz"
    )


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
        # Let the workers exit on their own: the pool's exit would SIGTERM them, which a process started with
        # SIGTERM ignored (inherited across exec, as under some CI runners) never acts on, and the join then hangs.
        pool.close()
        pool.join()
    ledger = reader.read_ledger("iris")  # verifies the chain and the head record
    events = ledger.events
    assert len(events) == writers * per_writer
    assert {(e["writer"], e["i"]) for e in events} == {(w, i) for w in range(writers) for i in range(per_writer)}
    assert [e["seq"] for e in events] == list(range(1, writers * per_writer + 1))  # one chain, no fork
    assert ledger.head == {"seq": writers * per_writer, "hash": event_hash(events[-1])}
    if kind == "local":
        lines = (Path(location) / "ledger" / "iris.jsonl").read_text().splitlines()
        assert all(json.loads(line) for line in lines)  # no torn lines


KILL_SCRIPT = """
import os, sys
from pathlib import Path
from release_assets.release.s3_store import S3ReleaseStore
from release_assets.release.store import LocalReleaseStore
from release_assets_tests.release.test_store import s3_client

kind, location, bundle = sys.argv[1], sys.argv[2], Path(sys.argv[3])
store = LocalReleaseStore(Path(location)) if kind == "local" else S3ReleaseStore(s3_client(location), "killed")
store._put_manifest = lambda *a, **k: os._exit(9)  # the process dies between bundle and manifest
store.publish("iris", "00000000000000a7", bundle, {"version": "00000000000000a7"})
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
    assert store.publish("iris", "00000000000000a7", bundle, {"version": "00000000000000a7"})
    assert store.versions("iris") == ["00000000000000a7"] and store.latest("iris") == "00000000000000a7"


def _append_from_thread(store: S3ReleaseStore, writer: int, n: int) -> None:
    for i in range(n):
        store.append_event("iris", {"time": "2026-01-01T00:00:00", "writer": writer, "i": i, "action": "x"})


def test_concurrent_s3_appends_from_threads_keep_one_chain(s3_endpoint):
    s3_client(s3_endpoint).create_bucket(Bucket="threads")
    writers, per_writer = 4, 10
    threads = [
        threading.Thread(
            target=_append_from_thread, args=(S3ReleaseStore(s3_client(s3_endpoint), "threads"), w, per_writer)
        )
        for w in range(writers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ledger = S3ReleaseStore(s3_client(s3_endpoint), "threads").read_ledger("iris")
    assert {(e["writer"], e["i"]) for e in ledger.events} == {(w, i) for w in range(writers) for i in range(per_writer)}
    assert [e["seq"] for e in ledger.events] == list(range(1, writers * per_writer + 1))
    assert ledger.head == {"seq": writers * per_writer, "hash": event_hash(ledger.events[-1])}


def test_s3_writer_with_a_stale_tail_gets_412_and_chains_after_the_winner(s3_endpoint, monkeypatch):
    """Two writers read the same tail: the loser's create-only put of seq 2 fails, and it takes seq 3."""
    s3_client(s3_endpoint).create_bucket(Bucket="stale")
    winner, loser = (S3ReleaseStore(s3_client(s3_endpoint), "stale") for _ in range(2))
    first = winner.append_event("iris", {"action": "x", "n": 1})
    monkeypatch.setattr(loser, "_tail", lambda name: (1, event_hash(first)))  # read before the winner's seq 2
    second = winner.append_event("iris", {"action": "x", "n": 2})
    third = loser.append_event("iris", {"action": "x", "n": 3})
    assert (second["seq"], third["seq"], third["prev"]) == (2, 3, event_hash(second))
    assert [e["n"] for e in loser.events("iris")] == [1, 2, 3]


def test_appends_are_chained_and_verify(store):
    first = store.append_event("iris", {"action": "x", "n": 1})
    second = store.append_event("iris", {"action": "x", "n": 2})
    assert (first["seq"], first["prev"]) == (1, GENESIS)
    assert (second["seq"], second["prev"]) == (2, event_hash(first))
    ledger = store.read_ledger("iris")
    assert ledger.events == [first, second] and ledger.legacy == 0
    assert ledger.head == {"seq": 2, "hash": event_hash(second)}


def _ledger_of_eight(store: ReleaseStore) -> None:
    for n in range(1, 9):
        store.append_event("iris", {"action": "x", "n": n, "reason": "ok"})


def _tamper(store: ReleaseStore, how: str) -> str:
    """Change the ledger behind the store's back; returns how the store names event ``k`` (``{k}``)."""
    if isinstance(store, LocalReleaseStore):
        path = store.root / "ledger" / "iris.jsonl"
        lines = path.read_text().splitlines()
        if how == "edit_middle":
            lines[4] = lines[4].replace('"reason": "ok"', '"reason": "edited"')
        elif how == "edit_last":
            lines[7] = lines[7].replace('"reason": "ok"', '"reason": "edited"')
        elif how == "delete_middle":
            del lines[4]
        elif how == "delete_last":
            del lines[7]
        else:
            lines[4], lines[5] = lines[5], lines[4]
        path.write_text("\n".join(lines) + "\n")
        return f"{path} line {{k}}"
    client, bucket = store.client, store.bucket
    key = store._key("ledger", "iris", "{k:012d}.json")
    read = lambda k: client.get_object(Bucket=bucket, Key=key.format(k=k))["Body"].read()  # noqa: E731
    write = lambda k, body: client.put_object(Bucket=bucket, Key=key.format(k=k), Body=body)  # noqa: E731
    if how in ("edit_middle", "edit_last"):
        k = 5 if how == "edit_middle" else 8
        write(k, read(k).replace(b'"reason": "ok"', b'"reason": "edited"'))
    elif how in ("delete_middle", "delete_last"):
        client.delete_object(Bucket=bucket, Key=key.format(k=5 if how == "delete_middle" else 8))
    else:
        fifth, sixth = read(5), read(6)
        write(5, sixth)
        write(6, fifth)
    return f"s3://{bucket}/{key}"


def _label(store: ReleaseStore, k: int) -> str:
    return f"line {k}" if isinstance(store, LocalReleaseStore) else f"{k:012d}.json"


@pytest.mark.parametrize(
    "how, where, problem",
    [
        ("edit_middle", 5, "edited (its hash does not match the `prev` of {next})"),
        ("edit_last", 8, "edited (its hash does not match the head record"),
        ("delete_middle", 5, "is missing (seq jumps from 4 to 6)"),
        ("delete_last", 8, "is missing: the head record says 8 events, the ledger has 7 (the last event was deleted)"),
        ("swap", 5, "reordered (seq 6 before seq 5)"),
    ],
)
def test_tampering_is_detected_and_located(store, how, where, problem):
    _ledger_of_eight(store)
    assert len(store.events("iris")) == 8
    location = _tamper(store, how).format(k=where)
    separator = " " if problem.startswith("is missing") else ": "
    expected = location + separator + problem.format(next=_label(store, where + 1))
    with pytest.raises(LedgerError, match="^" + re.escape(expected)):
        store.events("iris")


def _write_legacy(store: ReleaseStore, events: list[dict]) -> None:
    """Events as the pre-chain store wrote them: no seq, no prev, no head record."""
    if isinstance(store, LocalReleaseStore):
        path = store.root / "ledger" / "iris.jsonl"
        path.parent.mkdir(parents=True)
        path.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in events))
        return
    for i, e in enumerate(events):
        key = store._key("ledger", "iris", f"{e['time'].replace(':', '').replace('-', '')}-{i:032x}.json")
        store.client.put_object(Bucket=store.bucket, Key=key, Body=json.dumps(e, sort_keys=True).encode())


def test_a_legacy_ledger_loads_and_the_chain_continues_from_it(store):
    legacy = [{"time": f"2025-01-01T00:00:0{i}", "action": "x", "n": i} for i in (1, 2)]
    _write_legacy(store, legacy)
    assert store.events("iris") == legacy
    appended = store.append_event("iris", {"time": "2026-01-01T00:00:00", "action": "x", "n": 3})
    assert (appended["seq"], appended["prev"]) == (3, event_hash(legacy[-1]))
    ledger = store.read_ledger("iris")
    assert [e["n"] for e in ledger.events] == [1, 2, 3] and ledger.legacy == 2


def test_an_unchained_event_after_the_chain_is_refused(tmp_path):
    store = LocalReleaseStore(tmp_path)
    store.append_event("iris", {"action": "x"})
    with (tmp_path / "ledger" / "iris.jsonl").open("a") as fh:
        fh.write(json.dumps({"action": "x", "forged": True}) + "\n")
    with pytest.raises(LedgerError, match=r"iris\.jsonl line 2: no seq/prev after chained events"):
        store.events("iris")


def test_a_damaged_line_is_named(tmp_path):
    store = LocalReleaseStore(tmp_path)
    store.append_event("iris", {"action": "x"})
    with (tmp_path / "ledger" / "iris.jsonl").open("a") as fh:
        fh.write('{"action": "x", "seq": 2, "prev"\n')
    with pytest.raises(LedgerError, match=r"iris\.jsonl line 2: not a JSON event"):
        store.events("iris")
    with pytest.raises(LedgerError, match=r"iris\.jsonl line 2: not a JSON event"):
        store.append_event("iris", {"action": "x"})  # never chain from a line that cannot be read


@pytest.mark.parametrize("name", ["../../../outside", "Iris", "iris/../x", ""])
def test_names_that_could_leave_the_store_are_refused_everywhere(tmp_path, name):
    store = LocalReleaseStore(tmp_path)
    for call in (
        lambda: store.events(name),
        lambda: store.versions(name),
        lambda: store.latest(name),
        lambda: store.manifest(name, "00000000000000a1"),
        lambda: store.manifest("iris", name or "x"),
    ):
        with pytest.raises(StoreError, match=r"is not a release (name|version)"):
            call()


def test_data_is_content_addressed_idempotent_and_checked_on_the_way_out(store, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_bytes(b'{"id": 1}\n')
    digest = hashlib.sha256(rows.read_bytes()).hexdigest()
    assert not store.has_data(digest)
    assert store.publish("iris", "a" * 16, _bundle(tmp_path), {"version": "a" * 16}, data={digest: rows})
    assert store.has_data(digest)
    assert digest in store.data_uri(digest)
    out = store.fetch_data(digest, tmp_path / "back")
    assert out.read_bytes() == rows.read_bytes()
    # A second version naming the same bytes stores nothing new.
    assert store.publish("iris", "b" * 16, _bundle(tmp_path), {"version": "b" * 16}, data={digest: rows})
    missing = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(StoreError, match=missing[:2]):
        store.fetch_data(missing, tmp_path / "none")
    with pytest.raises(StoreError, match="is not a sha256 digest"):
        store.fetch_data("../../etc/passwd", tmp_path / "none")


def test_data_whose_stored_bytes_changed_is_refused(tmp_path):
    store = LocalReleaseStore(tmp_path / "store")
    rows = tmp_path / "rows.jsonl"
    rows.write_bytes(b'{"id": 1}\n')
    digest = hashlib.sha256(rows.read_bytes()).hexdigest()
    store.publish("iris", "a" * 16, _bundle(tmp_path), {"version": "a" * 16}, data={digest: rows})
    Path(store.data_uri(digest)).write_bytes(b"tampered\n")
    with pytest.raises(StoreError, match="does not match"):
        store.fetch_data(digest, tmp_path / "back")
    assert not (tmp_path / "back").exists()
