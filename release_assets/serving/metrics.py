"""Prometheus metrics for the serving app, on a registry of their own.

Each ``ServingMetrics`` owns a ``CollectorRegistry`` rather than the process-wide default, so two apps (or two
tests) in one process never collide on metric names. Durations are exported in seconds, the Prometheus base unit;
the bucket edges are chosen for answers that take 0.5–500 ms.

What the response-derived counters read (``observe_response``):

- schema failures: a step whose output failed validation. A response counts one failure per step named in a
  non-empty ``errors`` dict (``{step: problem}``, the chain runner's shape); else one (step ``error_step`` or
  ``"unknown"``) when it carries a truthy ``error`` field; else one (step ``"unknown"``) when ``format_valid`` is
  ``False``. A response with none of these is schema-valid.
- escalations / abstentions: ``escalate`` / ``abstained`` is ``True``.
- low confidence: ``confidence`` is a number below the threshold; a classifier response without ``confidence``
  is judged by its highest class probability.
- intents: the decided ``intent`` (chains), else the ``label`` (classifiers), when a non-empty string; a value that
  is not a short plain token counts as ``"other"``, so a model's output can never mint unbounded time series.

Shed load (``observe_shed``): ``shed`` counts requests refused by admission control before routing, by ``reason``
(``overloaded``: 503, the worker's in-flight limit; ``rate_limited``: 429, the client's rate). They are also in
``requests`` under variant ``none``, like every request refused before routing, so no version's error rate holds
them.

Two gauges describe routing rather than answers: ``circuit_open`` (set by the app on a breaker's state change) and
``canary_weight``, computed from the ``weights`` callback each time the registry is rendered, so it always shows
what routes now (``serve`` passes the flag router's applied flags: never a weight from a file it refused).

Several workers (``serve --workers N``): with ``PROMETHEUS_MULTIPROC_DIR`` set before the workers start, every
value lives in that folder's per-process files and :meth:`ServingMetrics.render` sums them, so ``/metrics`` answers
for the whole server whichever worker the scrape reaches. Counters and histograms add up; the gauges say how: a
breaker or a refused flag file is open/refused if any live worker says so (``livemax``), the counters' start is the
earliest worker's (``min``: a restarted worker's counts are still in the folder, so nothing went down), a shadow
agreement ratio is the latest any worker computed (``livemostrecent``; the comparison counters are exact).
``canary_weight`` is read from the rendering worker's router: every worker applies the same flag file.

Feedback (``observe_feedback``): ``feedback`` counts the outcomes users reported for answers, by the version and
variant that answered and a fixed ``outcome`` word (FEEDBACK_OUTCOMES), each answer's feedback once.

Flag files (``observe_flag_file``, the flag router's ``on_file``): ``flag_errors`` counts each flag document the
router refused, by a fixed ``reason`` word; ``flag_file_rejected`` is 1 while the file on disk is refused and the
last good flags route instead, 0 once a file applies (or is removed).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest
from prometheus_client.core import GaugeMetricFamily

from release_assets.serving.feedback import FEEDBACK_OUTCOMES

# Spelled out: prometheus_client >= 0.22 defaults to the 1.0.0 text format, and older ones lack this constant.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

PREFIX = "release_assets_serving"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable: its values go to files there
# 0.5 ms .. 500 ms, roughly 1-2.5-5 per decade, plus 1 s so a slow tail is visible rather than all in +Inf.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32)  # batching.MAX_BATCH is the largest
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
LABELS = ("release", "version", "variant")
SHADOW_LABELS = ("release", "primary_version", "shadow_version")
INTENT = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
OTHER = "other"
MAX_CACHED_CHILDREN = 4096
NO_CANARY = "none"  # the canary_version label of a release whose flags route no canary
# release -> (canary version, percent routed to it); None (or absent): no canary
Weights = Callable[[], dict[str, tuple[str, int] | None]]
log = logging.getLogger(__name__)


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def schema_failures(response: dict[str, Any]) -> list[str]:
    """The steps whose output failed validation in this response (see the module docstring)."""
    errors = response.get("errors")
    if isinstance(errors, dict) and errors:
        return [str(step) for step in errors]
    if response.get("error"):
        return [str(response.get("error_step") or "unknown")]
    if response.get("format_valid") is False:
        return ["unknown"]
    return []


def confidence_of(response: dict[str, Any]) -> float | None:
    value = response.get("confidence")
    # bool is an int subclass: a stray True must not read as confidence 1.0.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    probs = response.get("probabilities")
    if isinstance(probs, dict) and probs:
        numbers = [float(p) for p in probs.values() if isinstance(p, int | float) and not isinstance(p, bool)]
        return max(numbers) if numbers else None
    return None


def intent_of(response: dict[str, Any]) -> str | None:
    """The answer's intent (chains) or label (classifiers) as a bounded label value; None when it has none."""
    value = response.get("intent")
    if value is None:
        value = response.get("label")
    if not isinstance(value, str) or not value:
        return None
    return value if INTENT.fullmatch(value) else OTHER


class _CanaryWeights:
    """A collector that asks ``weights`` at render time: the gauge is never stale, and nothing has to poll."""

    NAME = f"{PREFIX}_canary_weight"
    HELP = "Percentage of routing keys the release's flag file sends to its canary now (0: no canary)."

    def __init__(self, weights: Weights | None) -> None:
        self.weights = weights

    def describe(self):
        return [GaugeMetricFamily(self.NAME, self.HELP, labels=("release", "canary_version"))]

    def collect(self):
        family = GaugeMetricFamily(self.NAME, self.HELP, labels=("release", "canary_version"))
        try:
            routed = self.weights() if self.weights is not None else {}
        except Exception:  # a broken callback must not take /metrics down with it
            log.exception("reading the canary weights failed")
            routed = {}
        for release, found in sorted(routed.items()):
            version, percent = found if found is not None else (NO_CANARY, 0)
            family.add_metric([str(release), str(version)], float(percent))
        yield family


class ServingMetrics:
    def __init__(
        self, low_confidence: float = 0.5, registry: CollectorRegistry | None = None, weights: Weights | None = None
    ) -> None:
        """``weights``: release -> (canary version, percent) or None, read at every render for ``canary_weight``."""
        self.low_confidence = low_confidence
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            f"{PREFIX}_requests", "Predict requests answered, by status class.", [*LABELS, "status_class"], registry=r
        )
        self.errors = Counter(
            f"{PREFIX}_errors",
            "Predictions that raised (answered 500), by exception type.",
            [*LABELS, "error"],
            registry=r,
        )
        self.latency = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Wall time of predict requests that reached the model, from first byte read to answer.",
            LABELS,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.step_latency = Histogram(
            f"{PREFIX}_step_duration_seconds",
            "Per-step time reported in the answer's latency_ms.",
            [*LABELS, "step"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.schema_failures = Counter(
            f"{PREFIX}_schema_failures", "Step outputs that failed schema validation.", [*LABELS, "step"], registry=r
        )
        self.shed = Counter(
            f"{PREFIX}_shed",
            "Requests refused by admission control before routing (answered 503/429 with Retry-After), by reason.",
            ["release", "reason"],
            registry=r,
        )
        self.batch_size = Histogram(
            f"{PREFIX}_batch_size",
            "Requests a chain answered together in one run (serving/batching.py): 1 while the server keeps up.",
            ["release", "version"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.escalations = Counter(f"{PREFIX}_escalations", "Answers with escalate=true.", LABELS, registry=r)
        self.abstentions = Counter(f"{PREFIX}_abstentions", "Answers with abstained=true.", LABELS, registry=r)
        self.low_confidence_answers = Counter(
            f"{PREFIX}_low_confidence", f"Answers whose confidence is below {low_confidence}.", LABELS, registry=r
        )
        self.intents = Counter(
            f"{PREFIX}_intents",
            "Answers by decided intent (chains) or label (classifiers).",
            [*LABELS, "intent"],
            registry=r,
        )
        self.feedback = Counter(
            f"{PREFIX}_feedback",
            "Outcomes users reported for answers (POST /v1/{release}/feedback), each answer's feedback counted once.",
            [*LABELS, "outcome"],
            registry=r,
        )
        self.circuit_open = Gauge(
            f"{PREFIX}_circuit_open",
            "1 while the version's circuit breaker is open (or half-open).",
            LABELS,
            registry=r,
            multiprocess_mode="livemax",
        )
        # When this process's counters began: a reader tells a restarted server (counters from zero) by a new value.
        self.started = Gauge(
            f"{PREFIX}_started_seconds", "Unix time these counters started from.", registry=r, multiprocess_mode="min"
        )
        self.started.set(time.time())
        self.canary_weights = _CanaryWeights(weights)
        r.register(self.canary_weights)
        self.flag_errors = Counter(
            f"{PREFIX}_flag_errors",
            "Flag file documents refused (never applied: the last good flags keep routing), by reason.",
            ["release", "reason"],
            registry=r,
        )
        self.flag_file_rejected = Gauge(
            f"{PREFIX}_flag_file_rejected",
            "1 while the release's flag file is refused and its last good flags route instead.",
            ["release"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.shadow_submitted = Counter(
            f"{PREFIX}_shadow_submitted", "Requests handed to the shadow pool.", SHADOW_LABELS, registry=r
        )
        self.shadow_dropped = Counter(
            f"{PREFIX}_shadow_dropped", "Shadow requests dropped: the pool's queue was full.", SHADOW_LABELS, registry=r
        )
        self.shadow_failures = Counter(
            f"{PREFIX}_shadow_failures", "Shadow predictions that raised.", SHADOW_LABELS, registry=r
        )
        self.shadow_comparisons = Counter(
            f"{PREFIX}_shadow_comparisons",
            "Shadow answers compared with the primary, per compared field and outcome.",
            [*SHADOW_LABELS, "field", "agreed"],
            registry=r,
        )
        self.shadow_agreement = Gauge(
            f"{PREFIX}_shadow_agreement_ratio",
            "Share of shadow comparisons that agreed since start, per field.",
            [*SHADOW_LABELS, "field"],
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        # A Summary, not a Histogram: the difference is signed (a faster shadow is negative), and sum/count
        # give the mean shift, which is what a rollout decision reads.
        self.shadow_latency_diff = Summary(
            f"{PREFIX}_shadow_latency_diff_seconds", "Shadow minus primary latency.", SHADOW_LABELS, registry=r
        )
        self.shadow_not_kept = Counter(
            f"{PREFIX}_shadow_pairs_not_kept",
            "Shadow pairs not kept for the shadow report, by reason: full (this process reached the version's "
            "max_bytes), invalid, dropped (too many waiting for upload), upload_failed (the store refused them).",
            ["reason"],
            registry=r,
        )
        # The shadow pool reports from its own thread; the agreement ratio is a read-modify-write.
        self._lock = threading.Lock()
        # (metric, label values) -> its child: ``labels()`` validates and joins the values under a lock each call,
        # about 10 us, several times per answer. Children are never removed, so a cached one stays the live one.
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}
        self._agreement: dict[tuple[str, ...], list[int]] = {}

    def _child(self, metric: Any, *values: str) -> Any:
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*values)
            if len(self._children) < MAX_CACHED_CHILDREN:  # label values are bounded; the cache is too, regardless
                self._children[key] = child
        return child

    def observe_request(self, release: str, version: str, variant: str, status: int) -> None:
        self._child(self.requests, release, version, variant, status_class(status)).inc()

    def observe_shed(self, release: str, reason: str) -> None:
        self._child(self.shed, release, reason).inc()

    def observe_batch(self, release: str, version: str, size: int) -> None:
        self._child(self.batch_size, release, version).observe(size)

    def observe_latency(self, release: str, version: str, variant: str, seconds: float) -> None:
        self._child(self.latency, release, version, variant).observe(seconds)

    def observe_error(self, release: str, version: str, variant: str, error: BaseException) -> None:
        """A prediction that raised. An exception carrying ``errors`` ({step: problem}) also counts those steps as
        schema failures: the loader raises rather than answer a response whose steps failed validation."""
        labels = (release, version, variant)
        self._child(self.errors, *labels, type(error).__name__).inc()
        steps = getattr(error, "errors", None)
        if isinstance(steps, dict):
            for step in steps:
                self._child(self.schema_failures, *labels, str(step)).inc()

    def observe_response(self, release: str, version: str, variant: str, response: dict[str, Any]) -> None:
        """Feed everything an answer reports about itself: step latencies, schema failures, flags, confidence."""
        labels = (release, version, variant)
        steps = response.get("latency_ms")
        if isinstance(steps, dict):
            for step, ms in steps.items():
                if isinstance(ms, int | float) and not isinstance(ms, bool):
                    self._child(self.step_latency, *labels, str(step)).observe(ms / 1000)
        for step in schema_failures(response):
            self._child(self.schema_failures, *labels, step).inc()
        if response.get("escalate") is True:
            self._child(self.escalations, *labels).inc()
        if response.get("abstained") is True:
            self._child(self.abstentions, *labels).inc()
        confidence = confidence_of(response)
        if confidence is not None and confidence < self.low_confidence:
            self._child(self.low_confidence_answers, *labels).inc()
        intent = intent_of(response)
        if intent is not None:
            self._child(self.intents, *labels, intent).inc()

    def observe_feedback(self, release: str, version: str, variant: str, outcomes: list[str]) -> None:
        """Feedback on an answer of ``version``/``variant``: one count per outcome (FEEDBACK_OUTCOMES)."""
        for outcome in outcomes:
            if outcome not in FEEDBACK_OUTCOMES:
                raise ValueError(f"feedback outcome {outcome!r} is not one of {', '.join(FEEDBACK_OUTCOMES)}")
            self._child(self.feedback, release, version, variant, outcome).inc()

    def set_circuit_open(self, release: str, version: str, variant: str, is_open: bool) -> None:
        self._child(self.circuit_open, release, version, variant).set(1 if is_open else 0)

    def observe_flag_file(self, release: str, reason: str | None) -> None:
        """The flag router's ``on_file``: a document refused for ``reason``, or (None) a file applied or removed."""
        if reason is None:
            self._child(self.flag_file_rejected, release).set(0)
            return
        self._child(self.flag_errors, release, reason).inc()
        self._child(self.flag_file_rejected, release).set(1)

    def observe_shadow_submit(self, release: str, primary_version: str, shadow_version: str, accepted: bool) -> None:
        counter = self.shadow_submitted if accepted else self.shadow_dropped
        self._child(counter, release, primary_version, shadow_version).inc()

    def observe_shadow(
        self,
        release: str,
        primary_version: str,
        shadow_version: str,
        agreed: dict[str, bool],
        latency_diff_ms: float | None,
    ) -> None:
        """One shadow answer compared with the primary one (None: no latency to compare)."""
        pair = (release, primary_version, shadow_version)
        with self._lock:
            for field, ok in agreed.items():
                self._child(self.shadow_comparisons, *pair, field, "true" if ok else "false").inc()
                counts = self._agreement.setdefault((*pair, field), [0, 0])
                counts[0] += bool(ok)
                counts[1] += 1
                self._child(self.shadow_agreement, *pair, field).set(counts[0] / counts[1])
        if latency_diff_ms is not None:
            self._child(self.shadow_latency_diff, *pair).observe(latency_diff_ms / 1000)

    def observe_pair(self, pair: dict[str, Any]) -> None:
        """``ShadowPool``'s ``on_pair``: its pair record (``agreement``, ``latency_diff_ms``, ``shadow_error``)."""
        labels = (str(pair["release"]), str(pair.get("primary_version")), str(pair["shadow_version"]))
        if pair.get("shadow_error"):
            self._child(self.shadow_failures, *labels).inc()
            return  # a failed shadow has nothing to agree with
        self.observe_shadow(*labels, pair.get("agreement") or {}, pair.get("latency_diff_ms"))

    def observe_shadow_not_kept(self, reason: str, pairs: int) -> None:
        """A shadow writer's ``on_not_kept`` (serving/shadow_store.py): ``pairs`` not kept for ``reason``."""
        self.shadow_not_kept.labels(reason).inc(pairs)

    def render(self) -> bytes:
        """The registry in the Prometheus text format (version 0.0.4); with ``PROMETHEUS_MULTIPROC_DIR`` set, every
        worker's values summed (see the module docstring)."""
        folder = os.environ.get(MULTIPROC_ENV)
        if not folder:
            return generate_latest(self.registry)
        from prometheus_client.multiprocess import MultiProcessCollector

        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=folder)
        merged.register(self.canary_weights)  # computed now, not stored: this worker's router, the same flag file
        return generate_latest(merged)

    def close(self) -> None:
        """This worker is stopping: its live gauges (breakers, refused flag files) stop counting in the sum."""
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client.multiprocess import mark_process_dead

            mark_process_dead(os.getpid())
