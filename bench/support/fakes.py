"""Stand-ins for the serving app's collaborators: a LoadedRelease, a flag router, a shadow pool, a tracer.

The fake release validates requests with the real ``release_assets.serving.requests`` parsers, so the app is
tested against the same ``RequestError``s the loader raises, without training or publishing anything.
"""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from release_assets.release.store import LocalReleaseStore
from release_assets.serving.requests import parse_chain_request, parse_features, parse_table_row
from release_assets.serving.schemas import chain_signature, classifier_signature, table_signature

EXPLODE = "__explode__"  # a message containing this makes the fake's "reply" step fail
IRIS_LABELS = ("setosa", "versicolor", "virginica")
# A table model's feature columns (kind="table"): one of each dtype, a range, allowed values, a nullable column.
TABLE_COLUMNS = {
    "income": {"dtype": "float", "min": 0.0},
    "age": {"dtype": "int", "min": 18.0, "max": 120.0},
    "region": {"dtype": "str", "allowed": ["north", "south"]},
    "member": {"dtype": "bool"},
    "joined": {"dtype": "datetime", "nullable": True},
}
INTENTS = {"refund": "refund", "where": "order_status", "cancel": "cancel_order"}
CHAIN_FIELDS = {
    "release": str,
    "version": str,
    "variant": str,
    "intent": str,
    "confidence": float,
    "entities": dict,
    "reply": str,
    "escalate": bool,
    "abstained": bool,
    "latency_ms": dict,
    "request_id": str,
}


class StepFailed(RuntimeError):
    """Like the loader's: a step failed on a valid request. ``errors`` is what the metrics read."""

    def __init__(self, message: str, errors: dict[str, str]) -> None:
        super().__init__(message)
        self.errors = errors


class FakeRelease:
    """The ``LoadedRelease`` interface: deterministic answers, a call log, optional slowness. ``kind``: chain,
    classifier (iris: 4 features) or table (``TABLE_COLUMNS``, classifying into approve/decline)."""

    def __init__(self, release: str = "helpdesk", version: str = "v1", kind: str = "chain", delay: float = 0.0):
        self.release, self.version, self.kind, self.delay = release, version, kind, delay
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.embedding_model = None  # a release without a sentence_embedder member: shadow replies by tokens only
        self.signature = {
            "chain": chain_signature,
            "classifier": lambda: classifier_signature(4, IRIS_LABELS),
            "table": lambda: table_signature(TABLE_COLUMNS, ("approve", "decline"), "binary", "Loans"),
        }[kind]()

    def predict(
        self, request: Any, *, variant: str = "champion", request_id: str | None = None, observer: Any = None
    ) -> dict[str, Any]:
        with self._lock:
            self.calls.append({"request": request, "variant": variant, "request_id": request_id, "observer": observer})
        request_id = request_id or uuid.uuid4().hex
        head = {"release": self.release, "version": self.version, "variant": variant}
        if self.kind == "classifier":
            features = parse_features(request, 4, self.signature.request)
            label = "setosa" if features[2] < 2.5 else "versicolor"
            probabilities = {name: 0.9 if name == label else 0.05 for name in IRIS_LABELS}
            return {**head, "label": label, "probabilities": probabilities, "request_id": request_id}
        if self.kind == "table":
            row = parse_table_row(request, TABLE_COLUMNS, self.signature.request)
            label = "approve" if row["income"] > 30000 else "decline"
            probabilities = {"approve": 0.8, "decline": 0.2} if label == "approve" else {"approve": 0.3, "decline": 0.7}
            return {**head, "label": label, "probabilities": probabilities, "request_id": request_id}
        parsed = parse_chain_request(request)
        if EXPLODE in parsed.message:
            raise StepFailed(f"request {request_id}: reply: template error", {"reply": "template error"})
        if self.delay:
            time.sleep(self.delay)
        intent = next((v for k, v in INTENTS.items() if k in parsed.message.lower()), "other")
        known = intent != "other"
        if observer is not None:
            observer.on_step(request_id, "classify", parsed.message, intent, {"intent": intent}, None, 1.0, "fake")
        return {
            **head,
            "intent": intent,
            "confidence": 0.93 if known else 0.3,
            "entities": {},
            # Never echoes the message: an injected instruction cannot steer the canned reply.
            "reply": "We are on it." if known else "A colleague will get back to you.",
            "escalate": not known,
            "abstained": False,
            "latency_ms": {"classify": 1.5, "reply": 0.5, "total": 2.0},
            "request_id": request_id,
        }


def chain_response_problems(body: dict[str, Any]) -> list[str]:
    """What makes ``body`` not a helpdesk answer: missing fields or wrong types."""
    problems = [f"{k}: missing" for k in CHAIN_FIELDS if k not in body]
    problems += [
        f"{k}: {type(body[k]).__name__}" for k, t in CHAIN_FIELDS.items() if k in body and not isinstance(body[k], t)
    ]
    return problems


def list_as_published(root: Path, release: str, *versions: str) -> LocalReleaseStore:
    """A local store at ``root`` that lists ``versions`` of ``release`` as published (a manifest each, nothing to
    load): what serve checks a flag file's versions against."""
    for version in versions:
        folder = Path(root) / "releases" / release / version
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "manifest.json").write_text("{}")
    return LocalReleaseStore(root)


class FakeRouter:
    """Routes every key to one (variant, version) and shadows to ``shadow_version``; records the keys it saw."""

    def __init__(self, variant: str = "champion", version: str | None = None, shadow_version: str | None = None):
        self.variant, self.version, self.shadow_version = variant, version, shadow_version
        self.keys: list[str] = []

    def route(self, release: str, key: str) -> tuple[str, str | None]:
        self.keys.append(key)
        return self.variant, self.version

    def shadow(self, release: str, key: str) -> str | None:
        return self.shadow_version


class BrokenRouter:
    def route(self, release: str, key: str) -> tuple[str, str | None]:
        raise RuntimeError("flag file unreadable")

    def shadow(self, release: str, key: str) -> str | None:
        raise RuntimeError("flag file unreadable")


class FakeShadow:
    """Accepts (records) submissions until ``capacity`` is reached, then drops them like a full queue."""

    def __init__(self, capacity: int = 100, fail: bool = False):
        self.capacity, self.fail = capacity, fail
        self.submitted: list[tuple[str, dict[str, Any], Any, str]] = []
        self.latencies: list[float | None] = []

    def submit(
        self,
        release: str,
        primary_response: dict[str, Any],
        request: Any,
        shadow_version: str,
        primary_latency_ms: float | None = None,
    ) -> bool:
        self.latencies.append(primary_latency_ms)
        if self.fail:
            raise RuntimeError("pool is closed")
        if len(self.submitted) >= self.capacity:
            return False
        self.submitted.append((release, primary_response, request, shadow_version))
        return True

    def close(self) -> None:
        pass


class FakeSpan:
    """What ``Tracing.request_span`` yields: with tracing on, also the request's chain observer."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, str]] = []
        self.output: dict[str, Any] | None = None

    def on_step(self, request_id, step_id, rendered, raw, output, error, latency_ms, binding) -> None:
        self.steps.append((request_id, step_id))

    def set_output(self, value: Any, error: str | None = None) -> None:
        self.output = value


class FakeTracing:
    """The ``traces.Tracing`` interface the app uses: ``request_span`` and ``observer``."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []

    @contextmanager
    def request_span(self, release, version, variant, request_id, kind="prompt_chain", *, input_value=None, **extra):
        span = FakeSpan()
        self.spans.append({"args": (release, version, variant, request_id, kind), "input": input_value, **extra})
        self.spans[-1]["span"] = span
        yield span

    def observer(self, parent: FakeSpan) -> FakeSpan:
        return parent
