"""Live shadow pairs where the store is: on an S3 store (moto on 127.0.0.1) each replica uploads immutable segments,
and the reader judges every replica's pairs together; uploads never fail a pair's writer, and each replica keeps
the local log's byte cap. A local store keeps today's file."""

from __future__ import annotations

import json
import socket
import time

import pytest

from bench.support.s3_moto import moto_s3, store_client
from release_assets.release.s3_store import S3ReleaseStore
from release_assets.release.store import LocalReleaseStore
from release_assets.serving.metrics import ServingMetrics
from release_assets.serving.shadow_log import ShadowLog, pairs_path
from release_assets.serving.shadow_store import (
    LocalShadowPairs,
    S3ShadowPairs,
    SegmentWriter,
    as_shadow_pairs,
    store_shadow_pairs,
)
from release_assets_tests.serving.test_shadow_log import V1, V2, make_pair

BUCKET, PREFIX = "releases", "team/ra"


@pytest.fixture(scope="module")
def s3():
    with moto_s3(BUCKET) as (endpoint, client):
        yield endpoint, client


def place(s3, prefix: str, **bounds) -> S3ShadowPairs:
    return S3ShadowPairs(s3[1], BUCKET, prefix, **bounds)


def wait_until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s} s"
        time.sleep(0.02)


def test_two_replicas_upload_segments_and_the_reader_reads_both(s3):
    kept = place(s3, f"{PREFIX}/both")
    a, b = SegmentWriter(kept, str.upper, "pod-a"), SegmentWriter(kept, str.upper, "pod-b")
    for n in range(3):
        assert a.append(make_pair(n, message=f"refund {n}"))
        assert b.append(make_pair(10 + n, message=f"refund {10 + n}"))
    assert a.append(make_pair(20, V1))  # another shadowed version: a folder of its own
    a.close()
    b.close()
    assert a.stats == {"written": 4, "full": 0, "invalid": 0, "dropped": 0, "upload_failed": 0, "segments": 2}
    keys = kept.segment_keys("helpdesk", V2)
    folder = f"{PREFIX}/both/shadow/helpdesk/{V2}"
    assert kept.where("helpdesk", V2) == f"s3://{BUCKET}/{folder}/"
    assert [k.rsplit("/", 1)[0] for k in keys] == [folder, folder]
    assert [k.rsplit("/", 1)[1].split("-")[:2] for k in keys] == [["pod", "a"], ["pod", "b"]]
    assert all(k.endswith("-000001.jsonl") for k in keys)
    pairs = kept.read("helpdesk", V2)
    assert [p["request_id"] for p in pairs] == ["r0", "r1", "r2", "r10", "r11", "r12"]
    assert pairs[0]["message"] == "REFUND 0"  # redacted before it left the process
    assert [p["request_id"] for p in kept.read("helpdesk", V1)] == ["r20"]
    assert kept.read("helpdesk", "3333333333333333") == []


def test_a_full_segment_or_the_flush_interval_uploads_before_shutdown(s3):
    by_size = place(s3, f"{PREFIX}/size", segment_bytes=400, flush_s=600)
    writer = SegmentWriter(by_size, None, "pod-a")
    try:
        for n in range(4):  # each pair is ~250 bytes: the second fills a segment
            writer.append(make_pair(n))
        wait_until(lambda: writer.stats["segments"] >= 1)
        assert len(by_size.read("helpdesk", V2)) >= 2
    finally:
        writer.close()
    assert len(by_size.read("helpdesk", V2)) == 4

    by_time = place(s3, f"{PREFIX}/time", flush_s=0.05)
    writer = SegmentWriter(by_time, None, "pod-a")
    try:
        writer.append(make_pair(0))
        wait_until(lambda: writer.stats["written"] == 1)
        writer.append(make_pair(1))
        wait_until(lambda: writer.stats["written"] == 2)
        keys = by_time.segment_keys("helpdesk", V2)
        assert [k[-12:] for k in keys] == ["000001.jsonl", "000002.jsonl"]  # immutable: a new segment per flush
    finally:
        writer.close()


def test_each_replica_stops_at_max_bytes_per_version(s3):
    kept, told = place(s3, f"{PREFIX}/cap", max_bytes=600), []
    a, b = SegmentWriter(kept, None, "pod-a", lambda *heard: told.append(heard)), SegmentWriter(kept, None, "pod-b")
    written = [a.append(make_pair(n)) for n in range(5)]
    assert written == [True, True, False, False, False]  # ~250 bytes a pair: two fit in 600
    assert a.append(make_pair(9, V1))  # another version has a budget of its own
    assert b.append(make_pair(5)) and b.append(make_pair(6))  # so has another replica
    a.close()
    b.close()
    assert a.stats["full"] == 3 and a.stats["written"] == 3
    assert told == [("full", 1)] * 3  # what serve counts on /metrics
    assert len(kept.read("helpdesk", V2)) == 4


def test_pairs_beyond_the_buffer_bound_are_dropped_and_counted(s3):
    writer = SegmentWriter(place(s3, f"{PREFIX}/buffer", max_buffer_bytes=600, flush_s=600), None, "pod-a")
    try:
        assert [writer.append(make_pair(n)) for n in range(3)] == [True, True, False]
        assert writer.stats["dropped"] == 1
    finally:
        writer.close()
    assert writer.stats["written"] == 2


def test_an_unreachable_store_is_counted_and_never_raised():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    client = store_client(f"http://127.0.0.1:{port}", timeout_s=1, attempts=1)
    metrics = ServingMetrics()  # what serve hands the writer: the pairs lost show on /metrics
    writer = S3ShadowPairs(client, BUCKET, PREFIX).writer(None, metrics.observe_shadow_not_kept)
    assert writer.append(make_pair(1)) and writer.append(make_pair(2))
    writer.close()  # uploads what is left: fails, logged, counted
    assert writer.stats["upload_failed"] == 2 and writer.stats["written"] == 0
    assert 'release_assets_serving_shadow_pairs_not_kept_total{reason="upload_failed"} 2.0' in metrics.render().decode()


def test_a_pair_naming_no_version_or_a_broken_segment_is_refused_by_name(s3):
    kept = place(s3, f"{PREFIX}/broken")
    writer = SegmentWriter(kept, None, "pod-a")
    assert not writer.append(make_pair(1, version="../../etc"))
    writer.close()
    assert writer.stats["invalid"] == 1
    key = f"{kept.folder('helpdesk', V2)}/pod-a-20260101T000000Z-000001.jsonl"
    s3[1].put_object(Bucket=BUCKET, Key=key, Body=b'{"request_id": "r1"}\n{"request_id": ')
    with pytest.raises(ValueError, match=rf"s3://{BUCKET}/{key}:2: not a shadow pair"):
        kept.read("helpdesk", V2)  # uploaded whole: a torn last line is damage, not a write in progress
    with pytest.raises(ValueError, match="release"):
        kept.folder("../x", V2)


def test_the_store_decides_where_pairs_live(s3, tmp_path):
    local = store_shadow_pairs(LocalReleaseStore(tmp_path / "store"), tmp_path / "store" / "shadow")
    assert local == LocalShadowPairs(tmp_path / "store" / "shadow") == as_shadow_pairs(tmp_path / "store" / "shadow")
    told = []
    writer = local.writer(None, lambda *heard: told.append(heard))
    assert isinstance(writer, ShadowLog)
    assert writer.append(make_pair(1)) and not writer.append(make_pair(2, version="latest"))
    writer.close()
    assert told == [("invalid", 1)]
    assert local.where("helpdesk", V2) == str(pairs_path(tmp_path / "store" / "shadow", "helpdesk", V2))
    assert [p["request_id"] for p in local.read("helpdesk", V2)] == ["r1"]

    remote = store_shadow_pairs(S3ReleaseStore(s3[1], BUCKET, PREFIX), tmp_path / "unused")
    assert remote == S3ShadowPairs(s3[1], BUCKET, PREFIX)
    assert as_shadow_pairs(remote) is remote


def test_the_shadowed_version_is_read_from_the_flag_document_where_the_store_keeps_it(s3):
    """What the shadow report defaults to, on an S3 store: the store's flag object, checked like serve checks it."""
    from bench.support.bundles import publish_unit
    from release_assets.serving.flag_reads import store_shadow_version
    from release_assets.serving.flag_source import store_flags
    from release_assets.serving.flags import FlagError, flag_document, publish_flags

    store = S3ReleaseStore(s3[1], BUCKET, f"{PREFIX}/flags-default")
    v1, v2 = publish_unit(store, "helpdesk", "one"), publish_unit(store, "helpdesk", "two")
    assert store_shadow_version(store, "helpdesk") is None  # no document
    publish_flags(store_flags(store), "helpdesk", flag_document("helpdesk", v1))
    assert store_shadow_version(store, "helpdesk") is None  # no shadow
    publish_flags(store_flags(store), "helpdesk", flag_document("helpdesk", v1, shadow=v2, shadow_percent=10))
    assert store_shadow_version(store, "helpdesk") == v2
    document = flag_document("helpdesk", v1, shadow=v2, shadow_percent=10)
    document["flags"]["helpdesk.shadow"]["variants"]["on"] = "f" * 16  # never published
    key = f"{PREFIX}/flags-default/flags/helpdesk.flagd.json"
    s3[1].put_object(Bucket=BUCKET, Key=key, Body=json.dumps(document).encode())
    with pytest.raises(FlagError, match=rf"s3://{BUCKET}/{key}: helpdesk.shadow.variants.on: f+ is not a published"):
        store_shadow_version(store, "helpdesk")
