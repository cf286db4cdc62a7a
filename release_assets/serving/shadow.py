"""Shadow traffic: send a sampled request to a second version off the request path and record how they compare.

The caller has already answered with the primary version; :meth:`ShadowPool.submit` only enqueues (never waits,
never raises), worker threads run the shadow prediction, and each finished job becomes a pair record handed to
``on_pair`` (metrics, a log). The shadow's answer goes nowhere else. The queue is bounded so a slow shadow version
costs dropped pairs, not memory or request latency.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from release_assets.evaluation.golden import token_f1

log = logging.getLogger(__name__)
_STOP = object()
_CLOSE_GRACE_S = 0.1  # after the deadline: time for idle workers to skip what is left and exit


def _latency_ms(response: dict[str, Any]) -> float | None:
    """Chains report ``latency_ms: {..., "total": ms}``; a bare number is accepted too."""
    value = response.get("latency_ms")
    if isinstance(value, dict):
        value = value.get("total")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


SIDE_FIELDS = ("intent", "abstained", "escalate", "reply")
SIDE_REPLY_CHARS = 240  # enough to read why two replies differ; a pair record stays one short line


def side(response: dict[str, Any]) -> dict[str, Any]:
    """What a chain answer decided, kept in the pair so rates (abstain, escalation) and examples can be computed
    from pair records alone, offline and live alike."""
    out = {field: response.get(field) for field in SIDE_FIELDS}
    if isinstance(out["reply"], str) and len(out["reply"]) > SIDE_REPLY_CHARS:
        out["reply"] = out["reply"][: SIDE_REPLY_CHARS - 3] + "..."
    return out


def compare(primary: dict[str, Any], shadow: dict[str, Any], embedder: Any = None) -> dict[str, Any]:
    """How the shadow's answer agrees with the primary's, on the fields the primary's release kind has.

    ``agreement`` holds ``label`` (classifier) and ``intent``/``entities`` (chain); ``reply_similarity`` is the
    token F1 of the replies (chain), and ``reply_semantic_similarity`` their cosine in ``embedder``'s space when
    the chain has an embedding model (a reworded reply that says the same agrees); ``latency_diff_ms`` is shadow
    minus primary, when both report a latency. Chains also get ``primary`` and ``shadow``: each side's intent,
    abstained, escalate and (shortened) reply.
    """
    agreement = {
        field: shadow.get(field) == primary[field] for field in ("intent", "entities", "label") if field in primary
    }
    out: dict[str, Any] = {"agreement": agreement}
    if "reply" in primary:
        replies = [str(shadow.get("reply") or ""), str(primary["reply"] or "")]
        out["reply_similarity"] = round(token_f1(*replies), 6)
        if embedder is not None:
            out["reply_semantic_similarity"] = round(float(embedder.similarity(replies[:1], replies[1:])[0]), 6)
        out["primary"], out["shadow"] = side(primary), side(shadow)
    got, want = _latency_ms(shadow), _latency_ms(primary)
    if got is not None and want is not None:
        out["latency_diff_ms"] = round(got - want, 3)
    return out


class ShadowPool:
    """Bounded queue + worker threads that run shadow predictions and report pairs; safe from many threads."""

    def __init__(
        self,
        predict_version: Callable[[str, str, dict], dict],
        on_pair: Callable[[dict], None],
        max_queue: int = 256,
        workers: int = 1,
        embedding_model: Callable[[str, str], Any] | None = None,
    ) -> None:
        if max_queue < 1 or workers < 1:
            raise ValueError(f"max_queue ({max_queue}) and workers ({workers}) must be at least 1")
        # The shadow version's sentence-embedding model, or None: what compares the two replies by meaning (as the
        # offline replay does with the candidate's), off the request path like the rest of the pair.
        self._embedding_model = embedding_model
        self._predict, self._on_pair, self._max_queue = predict_version, on_pair, max_queue
        # The bound is our own count, not Queue(maxsize): close() must always fit its stop markers in.
        self._queue: queue.Queue = queue.Queue()
        self._lock, self._pending, self._closed = threading.Lock(), 0, False
        self._abandon = threading.Event()
        self._counts: Counter[str] = Counter()
        self._threads = [threading.Thread(target=self._work, name=f"shadow-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    @property
    def stats(self) -> dict[str, int]:
        """submitted, completed (pairs made, a failed shadow included), dropped (queue full or closed), failed
        (the shadow prediction raised), abandoned (queued when close ran out of time), sink_errors (on_pair
        raised), queued (waiting now)."""
        with self._lock:
            keys = ("submitted", "completed", "dropped", "failed", "abandoned", "sink_errors")
            return {**{k: self._counts[k] for k in keys}, "queued": self._pending}

    def submit(
        self,
        release: str,
        primary_response: dict,
        request: dict,
        shadow_version: str,
        primary_latency_ms: float | None = None,
    ) -> bool:
        """Queue one shadow prediction; False (and counted as dropped) when the queue is full or the pool closed.

        ``primary_latency_ms`` is for responses that do not report ``latency_ms`` (classifiers); the request and
        response are kept by reference until the pair is made, so do not mutate them after submitting."""
        with self._lock:
            if self._closed or self._pending >= self._max_queue:
                self._counts["dropped"] += 1
                return False
            self._pending += 1
            self._counts["submitted"] += 1
            # Under the lock, so a job can never land behind close()'s stop markers and be lost uncounted.
            self._queue.put((release, primary_response, request, shadow_version, primary_latency_ms))
        return True

    def close(self, timeout_s: float = 5.0) -> dict[str, int]:
        """Stop taking work, let the workers finish the queue for up to ``timeout_s``, then skip what is left.

        Returns within ``timeout_s`` + 0.1 s. A worker still inside a prediction then is left to finish on its
        own (a daemon thread; its pair is still reported) and counted in ``workers_alive``."""
        with self._lock:
            first, self._closed = not self._closed, True
        if first:
            for _ in self._threads:  # after every queued job, so the queue drains first
                self._queue.put(_STOP)
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            self._abandon.set()  # out of time: what is still queued is skipped, by us now or by a freed worker
            stops = 0
            while True:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stops += 1
                    continue
                with self._lock:
                    self._pending -= 1
                    self._counts["abandoned"] += 1
            for _ in range(stops):
                self._queue.put(_STOP)
            grace = time.monotonic() + _CLOSE_GRACE_S
            for thread in self._threads:
                thread.join(max(0.0, grace - time.monotonic()))
        return {**self.stats, "workers_alive": sum(t.is_alive() for t in self._threads)}

    def _work(self) -> None:
        while (job := self._queue.get()) is not _STOP:
            with self._lock:
                self._pending -= 1
                if self._abandon.is_set():
                    self._counts["abandoned"] += 1
                    continue
            try:
                pair = self._pair(*job)
            except Exception:  # compare() on a malformed primary: count it, keep the worker alive
                with self._lock:
                    self._counts["failed"] += 1
                log.warning("shadow pair for %s could not be made", job[0], exc_info=True)
                continue
            try:
                self._on_pair(pair)
            except Exception:  # a broken sink must not kill the worker or reach a request
                with self._lock:
                    self._counts["sink_errors"] += 1
                log.warning("shadow on_pair failed for %s", pair.get("request_id"), exc_info=True)

    def _pair(self, release, primary, request, version, primary_latency_ms) -> dict[str, Any]:
        pair = {
            "release": release,
            "request_id": primary.get("request_id"),
            "primary_version": primary.get("version"),
            "shadow_version": version,
        }
        message = request.get("message") if isinstance(request, dict) else None
        if isinstance(message, str):  # what the disagreeing pairs' table shows; shortened like the replies
            pair["message"] = message if len(message) <= SIDE_REPLY_CHARS else message[: SIDE_REPLY_CHARS - 3] + "..."
        start = time.perf_counter()
        try:
            shadow = self._predict(release, version, request)
            if not isinstance(shadow, dict):
                raise TypeError(f"predict_version returned {type(shadow).__name__}, not a response dict")
        except Exception as exc:  # recorded in the pair: a broken shadow version is what shadowing is for
            with self._lock:
                self._counts["completed"] += 1
                self._counts["failed"] += 1
            log.debug("shadow %s %s failed", release, version, exc_info=True)
            sides = {"primary": side(primary)} if "reply" in primary else {}
            return {**pair, **sides, "agreement": {}, "shadow_error": f"{type(exc).__name__}: {exc}"}
        elapsed_ms = (time.perf_counter() - start) * 1000
        # Chains report their own latency on both sides; otherwise the shadow gets the time measured around
        # predict_version (parsing included) and the primary the time the caller gives.
        if _latency_ms(shadow) is None:
            shadow = {**shadow, "latency_ms": elapsed_ms}
        if _latency_ms(primary) is None and primary_latency_ms is not None:
            primary = {**primary, "latency_ms": primary_latency_ms}
        with self._lock:
            self._counts["completed"] += 1
        embedder = self._embedding_model(release, version) if self._embedding_model is not None else None
        return {**pair, **compare(primary, shadow, embedder), "shadow_error": None}
