"""One chain step as an OpenInference child span: its kind from the binding, input and output values, latency.

Shared by live requests (``traces.SpanObserver``) and offline golden runs (``traces.trace_golden_run``).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from openinference.semconv.trace import DocumentAttributes, MessageAttributes, OpenInferenceMimeTypeValues
from openinference.semconv.trace import OpenInferenceSpanKindValues as Kind
from openinference.semconv.trace import SpanAttributes as A
from opentelemetry.context import Context
from opentelemetry.trace import Status, StatusCode, Tracer


class StepRecord(NamedTuple):
    """The arguments of ``on_step``, in its order."""

    request_id: str
    step_id: str
    rendered: str | None
    raw: Any
    output: dict[str, Any] | None
    error: str | None
    latency_ms: float
    binding: str


def as_json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)


def io_attributes(direction: str, value: Any) -> dict[str, Any]:
    """``input.value``/``output.value`` and its mime type: text as is, anything else as JSON."""
    key, mime = (A.INPUT_VALUE, A.INPUT_MIME_TYPE) if direction == "input" else (A.OUTPUT_VALUE, A.OUTPUT_MIME_TYPE)
    if isinstance(value, str):
        return {key: value, mime: OpenInferenceMimeTypeValues.TEXT.value}
    return {key: as_json(value), mime: OpenInferenceMimeTypeValues.JSON.value}


def _step_kind(binding: str) -> Kind:
    return {"llm": Kind.LLM, "retrieve": Kind.RETRIEVER}.get(binding.split(":", 1)[0], Kind.TOOL)


def step_span(tracer: Tracer, context: Context | None, step: StepRecord, end_ns: int) -> None:
    """One finished step as one span ending at ``end_ns`` and lasting its ``latency_ms`` (a batch step's share)."""
    span = tracer.start_span(
        step.step_id, context=context, attributes=step_attributes(step), start_time=step_start(step, end_ns)
    )
    span.set_status(step_status(step))
    span.end(end_time=end_ns)


def step_start(step: StepRecord, end_ns: int) -> int:
    return end_ns - int(step.latency_ms * 1e6)


def step_status(step: StepRecord) -> Status:
    return Status(StatusCode.ERROR, step.error) if step.error else _OK


_OK = Status(StatusCode.OK)


def step_attributes(step: StepRecord) -> dict[str, Any]:
    """A step span's attributes: its kind from the binding, what it was given and answered, what validation kept."""
    kind = _step_kind(step.binding)
    attrs: dict[str, Any] = {
        A.OPENINFERENCE_SPAN_KIND: kind.value,
        A.METADATA: as_json({"request_id": step.request_id, "step": step.step_id, "binding": step.binding}),
        "step.latency_ms": float(step.latency_ms),
    }
    if step.rendered is not None:
        attrs.update(io_attributes("input", step.rendered))
    raw, answer = step.raw, step.raw
    if kind is Kind.LLM and isinstance(raw, dict):  # the runner passes an LLM step's last (redacted) trace record
        answer = raw.get("raw")
        if raw.get("model"):
            attrs[A.LLM_MODEL_NAME] = str(raw["model"])
        attrs[A.LLM_TOKEN_COUNT_PROMPT] = int(raw.get("tokens_in") or 0)
        attrs[A.LLM_TOKEN_COUNT_COMPLETION] = int(raw.get("tokens_out") or 0)
        for n, message in enumerate(raw.get("messages") or []):
            attrs[f"{A.LLM_INPUT_MESSAGES}.{n}.{MessageAttributes.MESSAGE_ROLE}"] = message["role"]
            attrs[f"{A.LLM_INPUT_MESSAGES}.{n}.{MessageAttributes.MESSAGE_CONTENT}"] = message["content"]
        if answer is not None:
            attrs[f"{A.LLM_OUTPUT_MESSAGES}.0.{MessageAttributes.MESSAGE_ROLE}"] = "assistant"
            attrs[f"{A.LLM_OUTPUT_MESSAGES}.0.{MessageAttributes.MESSAGE_CONTENT}"] = answer
    elif kind is Kind.RETRIEVER and isinstance(raw, dict) and raw.get("fact") is not None:
        attrs[f"{A.RETRIEVAL_DOCUMENTS}.0.{DocumentAttributes.DOCUMENT_ID}"] = str(raw["fact"])
        attrs[f"{A.RETRIEVAL_DOCUMENTS}.0.{DocumentAttributes.DOCUMENT_SCORE}"] = float(raw.get("score") or 0.0)
    elif kind is Kind.TOOL and step.binding:
        attrs[A.TOOL_NAME] = step.binding
    if answer is not None:
        attrs.update(io_attributes("output", answer))
    if step.output is not None:
        attrs["step.output"] = as_json(step.output)  # what validation kept, next to what the binding said
    return attrs
