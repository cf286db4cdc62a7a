"""The shadow pool: pairs compared off the request path, a bounded queue that drops, failures recorded, close
bounded; and the pure comparison."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from release_assets.serving.shadow import ShadowPool, compare

CHAIN = {
    "release": "helpdesk",
    "version": "1111111111111111",
    "intent": "refund",
    "entities": {"order": "123"},
    "reply": "Your refund for order 123 is on its way",
    "latency_ms": {"classify": 2.0, "total": 10.0},
    "request_id": "r1",
}
CLASSIFIER = {"release": "iris", "version": "1111111111111111", "label": "setosa", "request_id": "r2"}


def test_compare_chain_agreeing():
    shadow = {**CHAIN, "version": "2222222222222222", "latency_ms": {"total": 14.5}}
    side = {"intent": "refund", "abstained": None, "escalate": None, "reply": CHAIN["reply"]}
    assert compare(CHAIN, shadow) == {
        "agreement": {"intent": True, "entities": True},
        "reply_similarity": 1.0,
        "primary": side,
        "shadow": side,
        "latency_diff_ms": 4.5,
    }


def test_compare_chain_disagreeing():
    shadow = {
        "intent": "order_status",
        "entities": {"order": "124"},
        "reply": "Order 123 ships tomorrow",
        "latency_ms": {"total": 7.0},
    }
    got = compare(CHAIN, shadow)
    assert got["agreement"] == {"intent": False, "entities": False}
    assert got["reply_similarity"] == pytest.approx(2 * (2 / 4) * (2 / 9) / (2 / 4 + 2 / 9), abs=1e-6)  # order, 123
    assert got["latency_diff_ms"] == -3.0


def test_compare_classifier_has_only_its_fields():
    assert compare(CLASSIFIER, {**CLASSIFIER, "label": "virginica"}) == {"agreement": {"label": False}}
    timed = compare({**CLASSIFIER, "latency_ms": 1.0}, {**CLASSIFIER, "latency_ms": 3.25})
    assert timed == {"agreement": {"label": True}, "latency_diff_ms": 2.25}


def test_compare_shadow_missing_fields_disagrees():
    got = compare(CHAIN, {})
    assert got["agreement"] == {"intent": False, "entities": False} and got["reply_similarity"] == 0.0
    assert got["shadow"] == {"intent": None, "abstained": None, "escalate": None, "reply": None}


def collect():
    pairs: queue.Queue = queue.Queue()
    return pairs, pairs.put


def test_submit_returns_at_once_and_the_pair_comes_later():
    def slow(release, version, request):
        time.sleep(0.2)
        return {**CLASSIFIER, "version": version, "label": "setosa"}

    pairs, on_pair = collect()
    pool = ShadowPool(slow, on_pair)
    start = time.perf_counter()
    assert pool.submit("iris", CLASSIFIER, {"features": [1, 2, 3, 4]}, "2222222222222222", primary_latency_ms=1.0)
    submit_s = time.perf_counter() - start
    assert submit_s < 0.05, submit_s  # the 200 ms shadow prediction is not on the caller's path
    pair = pairs.get(timeout=5)
    assert pair["latency_diff_ms"] == pytest.approx(199, abs=50)
    del pair["latency_diff_ms"]
    assert pair == {
        "release": "iris",
        "request_id": "r2",
        "primary_version": "1111111111111111",
        "shadow_version": "2222222222222222",
        "agreement": {"label": True},
        "shadow_error": None,
    }
    assert pool.close(1) == {
        "submitted": 1,
        "completed": 1,
        "dropped": 0,
        "failed": 0,
        "abandoned": 0,
        "sink_errors": 0,
        "queued": 0,
        "workers_alive": 0,
    }


def test_a_full_queue_drops_and_counts():
    started, release = threading.Event(), threading.Event()

    def blocked(release_name, version, request):
        started.set()
        release.wait(5)
        return CHAIN

    pairs, on_pair = collect()
    pool = ShadowPool(blocked, on_pair, max_queue=2)
    assert pool.submit("helpdesk", CHAIN, {}, "v")
    assert started.wait(5)  # the worker holds job 1, so the queue is empty again
    assert pool.submit("helpdesk", CHAIN, {}, "v")
    assert pool.submit("helpdesk", CHAIN, {}, "v")
    start = time.perf_counter()
    assert not pool.submit("helpdesk", CHAIN, {}, "v")
    assert time.perf_counter() - start < 0.05  # full means "drop now", not "wait for room"
    assert pool.stats["dropped"] == 1 and pool.stats["queued"] == 2
    release.set()
    stats = pool.close(5)
    assert (stats["submitted"], stats["completed"], stats["dropped"], stats["workers_alive"]) == (3, 3, 1, 0)
    assert pairs.qsize() == 3


def test_a_failing_shadow_is_recorded_in_the_pair():
    def broken(release, version, request):
        raise RuntimeError("model file missing")

    pairs, on_pair = collect()
    pool = ShadowPool(broken, on_pair)
    assert pool.submit("helpdesk", CHAIN, {"message": "hi"}, "2222222222222222")
    pair = pairs.get(timeout=5)
    assert pair == {
        "release": "helpdesk",
        "request_id": "r1",
        "primary_version": "1111111111111111",
        "shadow_version": "2222222222222222",
        "message": "hi",
        "primary": {"intent": "refund", "abstained": None, "escalate": None, "reply": CHAIN["reply"]},
        "agreement": {},
        "shadow_error": "RuntimeError: model file missing",
    }
    stats = pool.close(1)
    assert (stats["completed"], stats["failed"]) == (1, 1)


def test_a_non_dict_answer_and_a_broken_sink_do_not_stop_the_worker():
    answers = iter([None, CHAIN])
    seen = []

    def sink(pair):
        seen.append(pair)
        if len(seen) == 1:
            raise ValueError("metrics down")

    pool = ShadowPool(lambda release, version, request: next(answers), sink)
    pool.submit("helpdesk", CHAIN, {}, "v")
    pool.submit("helpdesk", CHAIN, {}, "v")
    stats = pool.close(5)
    assert seen[0]["shadow_error"].startswith("TypeError: predict_version returned NoneType")
    assert seen[1]["agreement"] == {"intent": True, "entities": True}
    assert (stats["completed"], stats["failed"], stats["sink_errors"]) == (2, 1, 1)


def test_close_is_bounded_and_skips_what_is_left():
    stuck = threading.Event()
    pairs, on_pair = collect()
    pool = ShadowPool(lambda release, version, request: stuck.wait(10) and CHAIN, on_pair, max_queue=8)
    for _ in range(4):
        assert pool.submit("helpdesk", CHAIN, {}, "v")
    start = time.monotonic()
    stats = pool.close(timeout_s=0.2)
    assert time.monotonic() - start < 0.6
    assert stats["workers_alive"] == 1 and stats["abandoned"] == 3 and stats["queued"] == 0
    assert not pool.submit("helpdesk", CHAIN, {}, "v")  # closed: refused, counted as dropped
    assert pool.stats["dropped"] == 1
    stuck.set()  # the job in flight still finishes and reports its pair
    assert pairs.get(timeout=5)["agreement"] == {"intent": True, "entities": True}


def test_close_drains_the_queue_with_several_workers():
    pairs, on_pair = collect()
    pool = ShadowPool(lambda release, version, request: time.sleep(0.05) or CHAIN, on_pair, workers=4)
    for _ in range(8):
        pool.submit("helpdesk", CHAIN, {}, "v")
    start = time.monotonic()
    stats = pool.close(5)
    assert time.monotonic() - start < 1.0  # four at a time, not one
    assert (stats["completed"], stats["abandoned"], stats["workers_alive"]) == (8, 0, 0)
    assert pairs.qsize() == 8
    assert pool.close(1)["completed"] == 8  # closing twice is harmless


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="max_queue"):
        ShadowPool(lambda *a: {}, lambda p: None, max_queue=0)


def test_live_pairs_compare_replies_by_meaning_with_the_shadow_versions_embedding_model():
    class Embedder:
        """Replies that share their first word are the same answer (a stand-in for sentence embeddings)."""

        def similarity(self, texts, references):
            return [float(t.split()[0] == r.split()[0]) for t, r in zip(texts, references, strict=True)]

    asked = []

    def embedding_model(release, version):
        asked.append((release, version))
        return Embedder()

    reworded = {**CHAIN, "reply": "Your money for order 123 comes back soon"}
    pairs, on_pair = collect()
    pool = ShadowPool(lambda release, version, request: reworded, on_pair, embedding_model=embedding_model)
    assert pool.submit("helpdesk", CHAIN, {"message": "hi"}, "2222222222222222")
    pair = pairs.get(timeout=5)
    assert pair["reply_semantic_similarity"] == 1.0 and pair["reply_similarity"] < 1.0
    assert asked == [("helpdesk", "2222222222222222")]  # the shadow version's model, as the offline replay uses
    pool.close(1)
    plain, on_plain = collect()
    pool = ShadowPool(lambda release, version, request: reworded, on_plain)  # no embedding model: token F1 only
    pool.submit("helpdesk", CHAIN, {"message": "hi"}, "2222222222222222")
    assert "reply_semantic_similarity" not in plain.get(timeout=5)
    pool.close(1)
