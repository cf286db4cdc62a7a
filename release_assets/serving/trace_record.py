"""Served requests' spans recorded without the SDK's ``Span``: the same exported spans, a fraction of the cost.

The SDK's tracer does per span what a served request does not need: it samples (``serve`` keeps every span), makes
the span current in a context, checks and copies every attribute under a lock, and hands the span to the processors
through its own bookkeeping. A request and its chain steps paid that on the request thread, once per span: about a
third of a served iris answer's CPU. :class:`RecordedSpan` keeps what a span is (its ids, parent, attributes,
status, events, times) and, when it ends, gives the span processors the ``ReadableSpan`` the SDK would have given
them, so the exporters (and the redaction in front of them) see no difference.

Attribute values are taken as given: ``traces`` and ``trace_spans`` only ever set strings, numbers and booleans.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)


class SpanSink:
    """Where recorded spans go: the provider's span processors, with its resource, ids and scope."""

    def __init__(self, processor: SpanProcessor, resource: Resource, ids: IdGenerator, scope: str) -> None:
        self.processor, self.resource, self.ids = processor, resource, ids
        self.scope = InstrumentationScope(scope)

    def start(
        self, name: str, attributes: dict[str, Any], parent: SpanContext | None = None, start_ns: int | None = None
    ) -> RecordedSpan:
        """A span, started now (or at ``start_ns``), under ``parent`` (its trace) or a new trace."""
        trace_id = parent.trace_id if parent is not None else self.ids.generate_trace_id()
        context = SpanContext(trace_id, self.ids.generate_span_id(), is_remote=False, trace_flags=_SAMPLED)
        return RecordedSpan(self, name, context, parent, attributes, start_ns or time.time_ns())


class RecordedSpan:
    """One span being recorded: the part of ``opentelemetry.trace.Span`` that ``traces`` uses, with the SDK's rules
    for status (an OK status is final; UNSET never replaces one) and exceptions (an ``exception`` event)."""

    __slots__ = ("_sink", "attributes", "context", "ended", "events", "name", "parent", "start_ns", "status")

    def __init__(
        self,
        sink: SpanSink,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: dict[str, Any],
        start_ns: int,
    ) -> None:
        self._sink, self.name, self.context, self.parent = sink, name, context, parent
        self.attributes, self.status, self.start_ns = attributes, _UNSET, start_ns
        self.events: list[Event] = []
        self.ended = False

    def is_recording(self) -> bool:
        return not self.ended

    def get_span_context(self) -> SpanContext:
        return self.context

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if not self.ended:
            self.attributes.update(attributes)

    def set_attribute(self, key: str, value: Any) -> None:
        if not self.ended:
            self.attributes[key] = value

    def set_status(self, status: Status) -> None:
        if self.ended or self.status.status_code is StatusCode.OK or status.status_code is StatusCode.UNSET:
            return
        self.status = status

    def record_exception(self, exc: BaseException) -> None:
        """As the SDK records one (``exception.type``, ``.message``, ``.stacktrace``, ``.escaped``)."""
        kind = type(exc)
        module = kind.__module__
        attributes = {
            "exception.type": f"{module}.{kind.__qualname__}" if module and module != "builtins" else kind.__qualname__,
            "exception.message": str(exc),
            "exception.stacktrace": "".join(traceback.format_exception(exc)),
            "exception.escaped": "False",
        }
        self.events.append(Event("exception", attributes, time.time_ns()))

    def end(self, end_ns: int | None = None) -> None:
        """Hand the finished span to the processors (once)."""
        if self.ended:
            return
        self.ended = True
        sink = self._sink
        readable = ReadableSpan(
            name=self.name,
            context=self.context,
            parent=self.parent,
            resource=sink.resource,
            attributes=self.attributes,
            events=self.events,
            status=self.status,
            start_time=self.start_ns,
            end_time=end_ns or time.time_ns(),
            instrumentation_scope=sink.scope,
        )
        sink.processor.on_end(readable)
