"""The live shadow log: one JSONL line per pair, thread-safe, bounded, read back past a torn last line; and
``serve`` writing to it."""

from __future__ import annotations

import json
import threading
import time

import pytest
from starlette.testclient import TestClient

from bench.support.fakes import FakeRelease, list_as_published
from release_assets.serving.shadow_log import ShadowLog, pairs_path, read_pairs

V1, V2 = "1111111111111111", "2222222222222222"


def make_pair(n: int, version: str = V2, **extra) -> dict:
    return {
        "release": "helpdesk",
        "request_id": f"r{n}",
        "primary_version": V1,
        "shadow_version": version,
        "agreement": {"intent": True, "entities": True},
        "reply_similarity": 1.0,
        "shadow_error": None,
        **extra,
    }


def test_round_trip_one_file_per_shadow_version(tmp_path):
    log = ShadowLog(tmp_path)
    assert log.append(make_pair(1)) and log.append(make_pair(2)) and log.append(make_pair(3, V1))
    log.close()
    assert pairs_path(tmp_path, "helpdesk", V2) == tmp_path / "helpdesk" / f"{V2}.jsonl"
    assert [p["request_id"] for p in read_pairs(tmp_path, "helpdesk", V2)] == ["r1", "r2"]
    assert [p["request_id"] for p in read_pairs(tmp_path, "helpdesk", V1)] == ["r3"]
    assert read_pairs(tmp_path, "helpdesk", "3333333333333333") == []
    assert log.stats == {"written": 3, "full": 0, "invalid": 0}


def test_each_line_is_flushed_as_written(tmp_path):
    log = ShadowLog(tmp_path)
    log.append(make_pair(1))
    assert len(read_pairs(tmp_path, "helpdesk", V2)) == 1  # before close: a reader sees whole lines at once
    log.close()


def test_a_torn_last_line_is_skipped_a_broken_middle_line_is_an_error(tmp_path):
    log = ShadowLog(tmp_path)
    for n in range(3):
        log.append(make_pair(n))
    log.close()
    path = pairs_path(tmp_path, "helpdesk", V2)
    with path.open("a") as fh:
        fh.write('{"release": "helpdesk", "request_id": "r3", "agre')  # the writer died mid-line
    assert [p["request_id"] for p in read_pairs(tmp_path, "helpdesk", V2)] == ["r0", "r1", "r2"]
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "{not json", lines[1]]) + "\n")
    with pytest.raises(ValueError, match=rf"{V2}\.jsonl:2: not a shadow pair"):
        read_pairs(tmp_path, "helpdesk", V2)


def test_the_file_stops_growing_at_its_bound_and_counts_what_it_dropped(tmp_path):
    line = len(json.dumps(make_pair(0), sort_keys=True)) + 1
    log = ShadowLog(tmp_path, max_bytes=line * 3 + 5)
    written = [log.append(make_pair(0)) for _ in range(5)]
    log.close()
    assert written == [True, True, True, False, False]
    assert log.stats == {"written": 3, "full": 2, "invalid": 0}
    assert pairs_path(tmp_path, "helpdesk", V2).stat().st_size <= line * 3 + 5


def test_concurrent_appends_never_interleave(tmp_path):
    log = ShadowLog(tmp_path)

    def worker(w: int) -> None:
        for n in range(100):
            log.append(make_pair(w * 1000 + n, message="m" * 500))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    log.close()
    assert len({p["request_id"] for p in read_pairs(tmp_path, "helpdesk", V2)}) == 400


def test_names_never_reach_the_file_system_unchecked_and_messages_are_redacted(tmp_path):
    log = ShadowLog(tmp_path, redact=lambda text: text.replace("12345", "[REDACTED]"))
    assert not log.append(make_pair(1, version="../../etc"))
    assert not log.append({**make_pair(2), "release": "../x"})
    assert log.append(make_pair(3, message="where is order 12345?"))
    log.close()
    assert log.stats["invalid"] == 2
    assert read_pairs(tmp_path, "helpdesk", V2)[0]["message"] == "where is order [REDACTED]?"
    with pytest.raises(ValueError, match="not a release version"):
        read_pairs(tmp_path, "helpdesk", "latest")


def test_serve_appends_every_shadow_pair_to_the_log(tmp_path, monkeypatch):
    from release_assets.serving import loader
    from release_assets.serving.flags import flag_document, flags_path, write_flags
    from release_assets.serving.server import build_server

    def fake_load(store, release, version=None, alias=None, cache_dir=None, trust=None):
        return FakeRelease(release, version or V1)

    monkeypatch.setattr(loader, "load_release", fake_load)
    flags_dir = tmp_path / "flags"
    flags_dir.mkdir()
    write_flags(flags_path(flags_dir, "helpdesk"), flag_document("helpdesk", V1, shadow=V2, shadow_percent=100))
    server = build_server(
        list_as_published(tmp_path / "store", "helpdesk", V1, V2),  # flag files may name only published versions
        ["helpdesk"],
        cache_dir=tmp_path / "cache",
        flags_dir=flags_dir,
        trace_path=None,
        shadow_log_dir=tmp_path / "shadow",
        champion_poll_s=None,
    )
    try:
        client = TestClient(server.app)
        for n in range(3):
            assert client.post("/v1/helpdesk/predict", json={"message": f"refund for order {n}"}).status_code == 200
    finally:
        server.close()  # the shadow pool drains, then the log closes
    deadline = time.monotonic() + 5
    while len(pairs := read_pairs(tmp_path / "shadow", "helpdesk", V2)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(pairs) == 3
    assert {(p["primary_version"], p["shadow_version"]) for p in pairs} == {(V1, V2)}
    assert all(p["primary"]["intent"] == p["shadow"]["intent"] == "refund" for p in pairs)
    assert {p["message"] for p in pairs} == {f"refund for order {n}" for n in range(3)}
