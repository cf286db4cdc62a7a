"""Traces as OpenTelemetry spans with OpenInference attributes: one span per request, one child per chain step.

``Tracing`` owns its ``TracerProvider`` (never the global one, so two apps or two tests in a process keep their
spans apart) and exports through a ``BatchSpanProcessor`` per exporter: a size-rotated JSONL file when given a
path, OTLP/HTTP when given an endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT`` by default). Every exported string passes
the ``Redactor`` first (``trace_export``). With neither exporter tracing is off: no provider, no spans, and no
observer, so ``ChainRunner.run`` does no extra work.

Offline evaluation writes the same spans with ``golden_traces.trace_golden_run`` (variant ``golden``), so a
golden case and a served request are read the same way.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openinference.semconv.trace import OpenInferenceSpanKindValues as Kind
from openinference.semconv.trace import SpanAttributes as A
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanContext, Status, StatusCode, Tracer

from release_assets.serving.trace_export import (
    DEFAULT_BACKUPS,
    DEFAULT_MAX_BYTES,
    DEFAULT_RULES,
    REDACT_ENV,
    JsonlSpanExporter,
    RedactingExporter,
    Redactor,
)
from release_assets.serving.trace_record import RecordedSpan, SpanSink
from release_assets.serving.trace_spans import (
    StepRecord,
    as_json,
    io_attributes,
    step_attributes,
    step_span,
    step_start,
    step_status,
)

if TYPE_CHECKING:
    pass

__all__ = [
    "DEFAULT_RULES",
    "FROM_ENV",
    "REDACT_ENV",
    "JsonlSpanExporter",
    "Redactor",
    "RequestSpan",
    "SpanObserver",
    "Tracing",
    "set_output",
    "traces_url",
]

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
SCOPE = "release_assets.serving"  # the instrumentation scope of every span
FROM_ENV = f"env:{ENDPOINT_ENV}"  # Tracing's default endpoint: read when constructed, not when imported


AnySpan = Span | RecordedSpan  # the SDK's, or one recorded without it (trace_record.py)


class SpanObserver:
    """A ``ChainRunner.run`` observer: each step a request ran becomes a child of that request's span."""

    def __init__(self, tracer: Tracer, parent: AnySpan | Mapping[str, AnySpan], sink: SpanSink | None = None) -> None:
        self._tracer, self._sink = tracer, sink
        # Context is itself a dict, so a batch's {request id: context} lives apart from the single-request context.
        self._context = None if isinstance(parent, Mapping) else self._parent(parent)
        self._by_request = (
            {rid: self._parent(span) for rid, span in parent.items()} if isinstance(parent, Mapping) else {}
        )

    def _parent(self, span: AnySpan) -> Context | SpanContext:
        """A recorded span's children are recorded under its span context; an SDK span's, the SDK's way."""
        return span.context if isinstance(span, RecordedSpan) else trace.set_span_in_context(span)

    def on_step(
        self,
        request_id: str,
        step_id: str,
        rendered: str | None,
        raw: Any,
        output: dict[str, Any] | None,
        error: str | None,
        latency_ms: float,
        binding: str,
    ) -> None:
        context = self._context if self._context is not None else self._by_request.get(request_id)
        if context is None:  # a request of the batch nobody opened a span for
            return
        step, end_ns = (
            StepRecord(request_id, step_id, rendered, raw, output, error, latency_ms, binding),
            time.time_ns(),
        )
        if isinstance(context, SpanContext) and self._sink is not None:
            child = self._sink.start(step_id, step_attributes(step), parent=context, start_ns=step_start(step, end_ns))
            child.set_status(step_status(step))
            child.end(end_ns)
        else:
            step_span(self._tracer, context if isinstance(context, Context) else None, step, end_ns)


class RequestSpan:
    """What ``Tracing.request_span`` yields: the OpenTelemetry ``span`` and ``set_output``."""

    def __init__(self, span: AnySpan) -> None:
        self.span = span

    def set_output(self, value: Any, error: str | None = None) -> None:
        set_output(self.span, value, error)


class _ObservedRequestSpan(RequestSpan, SpanObserver):
    """With tracing on, the request span is also its request's chain observer (``runner.run(..., observer=rs)``)
    and keeps the latest step output as the request's output until ``set_output`` says otherwise. With tracing
    off a plain ``RequestSpan`` is yielded, which has no ``on_step``: nothing to observe, nothing to pay.

    The latest step output is encoded once, when the span ends, not at every step: ``set_output`` usually
    replaces it anyway."""

    span: RecordedSpan

    def __init__(self, tracer: Tracer, span: RecordedSpan, sink: SpanSink) -> None:
        RequestSpan.__init__(self, span)
        SpanObserver.__init__(self, tracer, span, sink)
        self._step_output: dict[str, Any] | None = None

    def set_output(self, value: Any, error: str | None = None) -> None:
        if value is not None:
            self._step_output = None
        set_output(self.span, value, error)

    def end(self) -> None:
        if self._step_output is not None:
            self.span.set_attributes(io_attributes("output", self._step_output))
        self.span.end()

    def on_step(
        self,
        request_id: str,
        step_id: str,
        rendered: str | None,
        raw: Any,
        output: dict[str, Any] | None,
        error: str | None,
        latency_ms: float,
        binding: str,
    ) -> None:
        SpanObserver.on_step(self, request_id, step_id, rendered, raw, output, error, latency_ms, binding)
        if output is not None:
            self._step_output = output
        if error:
            self.span.set_status(Status(StatusCode.ERROR, f"{step_id}: {error}"))


def _span_of(span: AnySpan | RequestSpan) -> AnySpan:
    return span.span if isinstance(span, RequestSpan) else span


def set_output(span: AnySpan | RequestSpan, value: Any, error: str | None = None) -> None:
    """The request's answer on its span (``output.value``); an error marks the span failed."""
    span = _span_of(span)
    if span.is_recording():
        if value is not None:
            span.set_attributes(io_attributes("output", value))
        if error:
            span.set_status(Status(StatusCode.ERROR, error))


def request_attributes(
    release: str, version: str, variant: str, request_id: str, kind: str, input_value: Any, **extra: Any
) -> dict[str, Any]:
    """A request span's attributes. ``kind`` is a release member kind (``prompt_chain``, ``text_classifier``) or
    an OpenInference kind; a request is the entry that links its steps, so anything else is CHAIN."""
    span_kind = kind.upper() if kind.upper() in Kind.__members__ else Kind.CHAIN.value
    meta = {"release": release, "version": version, "variant": variant, "request_id": request_id, "kind": kind}
    attrs: dict[str, Any] = {A.OPENINFERENCE_SPAN_KIND: span_kind}
    if input_value is not None:
        attrs.update(io_attributes("input", input_value))
    for key, attribute in (("session_id", A.SESSION_ID), ("user_id", A.USER_ID)):
        if extra.get(key):
            attrs[attribute] = str(extra.pop(key))
    attrs[A.METADATA] = as_json({**meta, **{k: v for k, v in extra.items() if v is not None}})
    return attrs


class Tracing:
    def __init__(
        self,
        service_name: str = "release-assets",
        jsonl_path: Path | None = None,
        otlp_endpoint: str | None = FROM_ENV,
        redactor: Redactor | None = None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        backups: int = DEFAULT_BACKUPS,
    ) -> None:
        """``otlp_endpoint`` is the collector's base URL (``/v1/traces`` is appended); the default reads
        ``$OTEL_EXPORTER_OTLP_ENDPOINT``, None turns OTLP off. ``redactor`` defaults to ``Redactor.from_env()``."""
        if otlp_endpoint == FROM_ENV:
            otlp_endpoint = os.environ.get(ENDPOINT_ENV) or None
        self.redactor = redactor if redactor is not None else Redactor.from_env()
        exporters: list[SpanExporter] = []
        if jsonl_path is not None:
            exporters.append(JsonlSpanExporter(Path(jsonl_path), max_bytes, backups))
        if otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter(endpoint=traces_url(otlp_endpoint)))
        self.enabled = bool(exporters)
        self.provider: TracerProvider | None = None
        self.tracer: Tracer = trace.NoOpTracer()
        self._sink: SpanSink | None = None
        if self.enabled:
            processors = SynchronousMultiSpanProcessor()  # every processor added to the provider, in its order
            resource = Resource.create({"service.name": service_name})
            self.provider = TracerProvider(resource=resource, active_span_processor=processors)
            # Served requests' spans are recorded without the SDK's Span (trace_record.py), for the same processors.
            self._sink = SpanSink(processors, resource, self.provider.id_generator, SCOPE)
            for exporter in exporters:
                # Small, frequent batches: exporting (redaction, JSON) holds the GIL, and one 512-span batch every
                # 5 s stalled requests for a few hundred ms; 64 spans a second spreads the same work thinly.
                processor = BatchSpanProcessor(
                    RedactingExporter(exporter, self.redactor.text),
                    max_export_batch_size=64,
                    schedule_delay_millis=1000,
                )
                self.provider.add_span_processor(processor)
            self.tracer = self.provider.get_tracer(SCOPE)

    @contextmanager
    def request_span(
        self,
        release: str,
        version: str,
        variant: str,
        request_id: str,
        kind: str = "prompt_chain",
        *,
        input_value: Any = None,
        session_id: str | None = None,
        user_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Iterator[RequestSpan]:
        """One request's span, current inside the block; an exception marks it failed and propagates."""
        if self._sink is None:
            yield RequestSpan(trace.INVALID_SPAN)
            return
        extra = {"session_id": session_id, "user_id": user_id, **(metadata or {})}
        attrs = request_attributes(release, version, variant, request_id, kind, input_value, **extra)
        observed = _ObservedRequestSpan(self.tracer, self._sink.start(f"{release} request", attrs), self._sink)
        try:
            yield observed
        except Exception as exc:  # as the SDK's start_as_current_span: an event, the span failed, raised on
            observed.span.record_exception(exc)
            observed.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            observed.end()

    def observer(self, parent: AnySpan | RequestSpan | Mapping[str, AnySpan | RequestSpan]) -> SpanObserver | None:
        """For ``ChainRunner.run(requests, observer=...)``: a request span, or ``{request id: span}`` for a batch.
        None when tracing is off or the span is not recording, so the runner skips all observation work."""
        if not self.enabled:
            return None
        if isinstance(parent, _ObservedRequestSpan):
            return parent if parent.span.is_recording() else None
        if isinstance(parent, Mapping):
            return SpanObserver(self.tracer, {k: _span_of(v) for k, v in parent.items()}, self._sink)
        span = _span_of(parent)
        return SpanObserver(self.tracer, span, self._sink) if span.is_recording() else None

    def shadow_span(self, pair: Mapping[str, Any], parent: AnySpan | RequestSpan | None = None) -> None:
        """One span per shadow pair (fits ``ShadowPool(on_pair=tracing.shadow_span)``): the pair as output and
        metadata, the request as input when the pair holds one, failed when ``shadow_error`` (or ``error``) is set.
        Under ``parent`` when given, else under the current span if any."""
        if not self.enabled:
            return
        inputs = ("input", "request", "message")
        attrs: dict[str, Any] = {
            A.OPENINFERENCE_SPAN_KIND: Kind.CHAIN.value,
            A.METADATA: as_json({k: v for k, v in pair.items() if k not in inputs}),
            **io_attributes("output", dict(pair)),
        }
        request = next((pair[k] for k in inputs if pair.get(k) is not None), None)
        if request is not None:
            attrs.update(io_attributes("input", request))
        for key, attribute in (("session_id", A.SESSION_ID), ("user_id", A.USER_ID)):
            if pair.get(key):
                attrs[attribute] = str(pair[key])
        under = _span_of(parent) if parent is not None else None
        if isinstance(under, RecordedSpan):  # the SDK's tracer takes a parent by its span context
            under = trace.NonRecordingSpan(under.context)
        context = trace.set_span_in_context(under) if under is not None else None
        name = f"{pair['release']} shadow" if pair.get("release") else "shadow pair"
        span = self.tracer.start_span(name, context=context, attributes=attrs)
        error = pair.get("shadow_error") or pair.get("error")
        span.set_status(Status(StatusCode.ERROR, str(error)) if error else Status(StatusCode.OK))
        span.end()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.provider.force_flush(timeout_millis) if self.provider else True

    def shutdown(self) -> None:
        if self.provider:
            self.provider.shutdown()


def traces_url(endpoint: str) -> str:
    """OTLP/HTTP's traces path on a collector base URL (as ``OTEL_EXPORTER_OTLP_ENDPOINT`` gives it)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else f"{endpoint}/v1/traces"
