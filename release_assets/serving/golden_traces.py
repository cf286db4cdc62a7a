"""A finished golden-suite run as the same spans a served request gets: lineage from the golden file to each
answer, read with the same tools as live traces."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from release_assets.serving.trace_spans import StepRecord, step_span
from release_assets.serving.traces import Tracing, request_attributes, set_output

if TYPE_CHECKING:
    from release_assets.chains.runner import CaseResult
    from release_assets.chains.schema import ChainSpec


def trace_golden_run(
    tracing: Tracing,
    release: str,
    version: str,
    results: Sequence[CaseResult],
    *,
    cases: Sequence[Mapping[str, Any]] | None = None,
    spec: ChainSpec | None = None,
    variant: str = "golden",
    metadata: Mapping[str, Any] | None = None,
    judgements: Mapping[str, Any] | None = None,
) -> int:
    """Spans for a finished golden run, shaped like served requests: one per case (its message as input, its
    outputs as output, its ``expected`` and ``metadata``, e.g. the golden file's digest, in the metadata) with
    one child per step. Returns the number of request spans.

    Built after the run from the ``CaseResult``s: step spans carry outputs, errors and latency, and for LLM steps
    the recorded prompt and answer (a non-LLM step's rendered text is not kept in a result). Steps are laid end
    to end, ending now. ``spec`` gives each step's binding (without it only LLM steps' are known).
    ``judgements``: the judge's verdict, score and reason per case id (evaluation/judge.py), in each case's metadata.
    """
    if not tracing.enabled:
        return 0
    by_id = {str(c["id"]): c for c in cases or []}
    bindings = {s.id: s.binding for s in spec.steps} if spec else {}
    for res in results:
        case = by_id.get(res.id, {})
        steps = [*res.outputs, *(s for s in res.errors if s not in res.outputs)]  # a failed step ran last
        latencies = [float(res.usage.get(s, {}).get("latency_ms", 0.0)) for s in steps]
        end_ns = time.time_ns()
        t = end_ns - int(sum(latencies) * 1e6)
        extra = {"expected": case.get("expected"), **(metadata or {})}
        if judgements and res.id in judgements:
            extra["judge"] = judgements[res.id]
        attrs = request_attributes(release, version, variant, res.id, "prompt_chain", case.get("message"), **extra)
        span = tracing.tracer.start_span(f"{release} request", attributes=attrs, start_time=t)
        context = trace.set_span_in_context(span)
        for step_id, latency in zip(steps, latencies, strict=True):
            record = next((r for r in reversed(res.traces) if r.get("step") == step_id), None)
            binding = bindings.get(step_id) or (record or {}).get("binding") or ""
            rendered = record["messages"][0]["content"] if record and record.get("messages") else None
            step = StepRecord(
                res.id, step_id, rendered, record, res.outputs.get(step_id), res.errors.get(step_id), latency, binding
            )
            t += int(latency * 1e6)
            step_span(tracing.tracer, context, step, t)
        set_output(span, res.outputs, "; ".join(f"{k}: {v}" for k, v in res.errors.items()) or None)
        span.end(end_time=end_ns)
    return len(results)
