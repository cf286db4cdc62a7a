"""ServingMetrics: its own registry, valid Prometheus text, and what each observe_* method counts."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from release_assets.serving.metrics import PREFIX, ServingMetrics, confidence_of, schema_failures

P = PREFIX
HEAD = {"release": "helpdesk", "version": "v1", "variant": "champion"}
LABELS = tuple(HEAD.values())


def samples(metrics: ServingMetrics) -> dict[tuple[str, frozenset], float]:
    """Every sample of the rendered text, keyed by name and labels: proves the output parses, too."""
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(metrics: ServingMetrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, frozenset(labels.items())))


def answer(**fields):
    base = {**HEAD, "intent": "refund", "confidence": 0.9, "escalate": False, "abstained": False}
    return {**base, "latency_ms": {"classify": 2.0, "reply": 30.0, "total": 32.0}, **fields}


def test_render_parses_and_counts_requests_by_status_class():
    m = ServingMetrics()
    for status in (200, 200, 422, 500):
        m.observe_request(*LABELS, status)
    m.observe_latency(*LABELS, 0.003)
    assert value(m, f"{P}_requests_total", **HEAD, status_class="2xx") == 2
    assert value(m, f"{P}_requests_total", **HEAD, status_class="4xx") == 1
    assert value(m, f"{P}_requests_total", **HEAD, status_class="5xx") == 1
    hist = f"{P}_request_duration_seconds"
    assert value(m, f"{hist}_bucket", **HEAD, le="0.0025") == 0
    assert value(m, f"{hist}_bucket", **HEAD, le="0.005") == 1
    assert value(m, f"{hist}_bucket", **HEAD, le="0.0005") == 0  # the smallest edge is 0.5 ms
    assert value(m, f"{hist}_count", **HEAD) == 1


def test_response_feeds_step_latency_and_answer_counters():
    m = ServingMetrics(low_confidence=0.5)
    m.observe_response(*LABELS, answer())
    m.observe_response(*LABELS, answer(escalate=True, confidence=0.2))
    m.observe_response(*LABELS, answer(abstained=True, confidence=None))
    step = f"{P}_step_duration_seconds"
    assert value(m, f"{step}_count", **HEAD, step="reply") == 3
    assert value(m, f"{step}_bucket", **HEAD, step="reply", le="0.025") == 0
    assert value(m, f"{step}_bucket", **HEAD, step="reply", le="0.05") == 3
    assert value(m, f"{P}_escalations_total", **HEAD) == 1
    assert value(m, f"{P}_abstentions_total", **HEAD) == 1
    assert value(m, f"{P}_low_confidence_total", **HEAD) == 1  # None is not "low"
    assert not any(name.startswith(f"{P}_schema_failures") and v for (name, _), v in samples(m).items())


def test_low_confidence_threshold_and_classifier_probabilities():
    m = ServingMetrics(low_confidence=0.8)
    m.observe_response(*LABELS, answer(confidence=0.7))
    iris = {**HEAD, "label": "setosa", "probabilities": {"setosa": 0.55, "versicolor": 0.45}}
    m.observe_response(*LABELS, iris)
    m.observe_response(*LABELS, {**iris, "probabilities": {"setosa": 0.95, "versicolor": 0.05}})
    assert value(m, f"{P}_low_confidence_total", **HEAD) == 2
    assert confidence_of({"confidence": True}) is None  # a bool is not a confidence


@pytest.mark.parametrize(
    ("response", "steps"),
    [
        ({"errors": {"extract": "bad", "reply": "bad"}}, ["extract", "reply"]),
        ({"error": "did not validate", "error_step": "reply"}, ["reply"]),
        ({"error": "did not validate"}, ["unknown"]),
        ({"format_valid": False}, ["unknown"]),
        ({"format_valid": True, "errors": {}}, []),
    ],
)
def test_schema_failures_detection(response, steps):
    assert schema_failures(response) == steps


def test_schema_failures_counted_per_step_from_responses_and_errors():
    m = ServingMetrics()
    m.observe_response(*LABELS, answer(format_valid=False))
    m.observe_response(*LABELS, answer(errors={"reply": "missing field"}))

    class StepFailed(RuntimeError):
        errors = {"reply": "template error"}  # noqa: RUF012

    m.observe_error(*LABELS, StepFailed("boom"))
    m.observe_error(*LABELS, ValueError("no steps named"))
    assert value(m, f"{P}_schema_failures_total", **HEAD, step="unknown") == 1
    assert value(m, f"{P}_schema_failures_total", **HEAD, step="reply") == 2
    assert value(m, f"{P}_errors_total", **HEAD, error="StepFailed") == 1
    assert value(m, f"{P}_errors_total", **HEAD, error="ValueError") == 1


def test_shadow_agreement_latency_and_drops():
    m = ServingMetrics()
    pair = {"release": "helpdesk", "primary_version": "v1", "shadow_version": "v2"}
    m.observe_shadow("helpdesk", "v1", "v2", {"intent": True, "escalate": True}, 12.0)
    m.observe_shadow("helpdesk", "v1", "v2", {"intent": False, "escalate": True}, -4.0)
    m.observe_shadow_submit("helpdesk", "v1", "v2", accepted=True)
    m.observe_shadow_submit("helpdesk", "v1", "v2", accepted=False)
    comparisons = f"{P}_shadow_comparisons_total"
    assert value(m, comparisons, **pair, field="intent", agreed="true") == 1
    assert value(m, comparisons, **pair, field="intent", agreed="false") == 1
    assert value(m, f"{P}_shadow_agreement_ratio", **pair, field="intent") == 0.5
    assert value(m, f"{P}_shadow_agreement_ratio", **pair, field="escalate") == 1.0
    assert value(m, f"{P}_shadow_latency_diff_seconds_count", **pair) == 2
    assert value(m, f"{P}_shadow_latency_diff_seconds_sum", **pair) == pytest.approx(0.008)
    assert value(m, f"{P}_shadow_submitted_total", **pair) == 1
    assert value(m, f"{P}_shadow_dropped_total", **pair) == 1


def test_two_instances_do_not_collide_or_touch_the_global_registry():
    from prometheus_client import REGISTRY

    a, b = ServingMetrics(), ServingMetrics()  # the same names twice: a shared registry would raise here
    a.observe_request(*LABELS, 200)
    assert value(a, f"{P}_requests_total", **HEAD, status_class="2xx") == 1
    assert value(b, f"{P}_requests_total", **HEAD, status_class="2xx") is None
    assert REGISTRY.get_sample_value(f"{P}_requests_total", {**HEAD, "status_class": "2xx"}) is None


def test_observe_pair_reads_the_shadow_pools_record():
    m = ServingMetrics()
    pair = {"release": "iris", "primary_version": "v1", "shadow_version": "v2"}
    m.observe_pair({**pair, "request_id": "r", "agreement": {"label": True}, "shadow_error": None})
    m.observe_pair({**pair, "request_id": "r", "agreement": {}, "shadow_error": "OSError: gone"})
    assert value(m, f"{P}_shadow_comparisons_total", **pair, field="label", agreed="true") == 1
    assert value(m, f"{P}_shadow_latency_diff_seconds_count", **pair) is None  # no latency to compare
    assert value(m, f"{P}_shadow_failures_total", **pair) == 1
