"""A served request's trace turned into a golden case, so what went wrong live is tested before the next release.

``serve`` writes one span per request to its span file (serving/traces.py, trace_export.py: JSON lines, rotated to
``<file>.1`` ... ``<file>.N``). The request span holds, in OpenInference's attributes, the request body
(``input.value``), the answer (``output.value``) and the request id, release, version and variant (``metadata``).
The case takes the user's message as it was and the answer as its expectations (intent, entities, abstain, the reply
as the reference reply): a person reviews and edits them, since the live answer is what is being questioned.

The span file is redacted as it is written. A message or expectation holding a redaction mark is refused: replayed,
it would not be what the user wrote (nor the answer to it). The request id itself may be redacted in the file (the
rules know nothing of ids: five digits of a uuid read as an order number), so an id is looked up both as given and
as the same redactor rewrites it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from release_assets.chains.knowledge import GoldenSuiteError
from release_assets.chains.llm.traces import REDACTED
from release_assets.core.textfiles import byte_lines

# OpenInference's span attribute names (openinference.semconv.trace.SpanAttributes), as the span file holds them.
INPUT, OUTPUT, METADATA = "input.value", "output.value", "metadata"
LIVE_PREFIX = "live-"  # golden ids of cases taken from live traffic: never mistaken for hand-written ones


class TraceNotUsable(GoldenSuiteError):
    """The request's trace is missing, or cannot become a golden case; the message says which and why."""


def span_files(path: Path) -> list[Path]:
    """The span file and its rotated generations (``<file>.1``, ``<file>.2``, ...), newest first."""
    files, n = [path] if path.is_file() else [], 1
    while (older := path.with_name(f"{path.name}.{n}")).is_file():
        files.append(older)
        n += 1
    return files


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _request_spans(path: Path) -> Iterator[tuple[Path, int, dict[str, Any], dict[str, Any]]]:
    for file in span_files(path):
        for line_no, raw in byte_lines(file):
            try:
                span = json.loads(raw)
            except json.JSONDecodeError:
                continue  # a line cut by a crash mid-write: not a span, and not the one asked for
            if not isinstance(span, dict) or span.get("parent_id") is not None:
                continue
            meta = _json((span.get("attributes") or {}).get(METADATA))
            if isinstance(meta, dict):
                yield file, line_no, span, meta


def find_request(path: Path, request_id: str, redact: Callable[[str], str] | None = None) -> dict[str, Any]:
    """The request span of ``request_id`` in ``path`` (and its rotated files); TraceNotUsable when none or several
    match. ``redact``: the span file's redactor, to find an id the file holds redacted."""
    if not span_files(path):
        raise TraceNotUsable(f"{path}: no span file (serve writes one while tracing is on; --traces names another)")
    wanted = {request_id, redact(request_id) if redact is not None else request_id}
    found = [(f, n, span) for f, n, span, meta in _request_spans(path) if meta.get("request_id") in wanted]
    if not found:
        files = ", ".join(str(p) for p in span_files(path))
        raise TraceNotUsable(f"request {request_id}: no request span with this id in {files}")
    if len({json.dumps(span["attributes"], sort_keys=True) for _, _, span in found}) > 1:
        where = ", ".join(f"{f}:{n}" for f, n, _ in found)
        raise TraceNotUsable(f"request {request_id}: several different requests carry this id ({where})")
    return found[0][2]


def _clean(value: Any, field: str, request_id: str) -> Any:
    if REDACTED in json.dumps(value, ensure_ascii=False):
        raise TraceNotUsable(
            f"request {request_id}: the trace's {field} was redacted ({value!r}); as a golden case it would not be "
            "what the user wrote or was answered: write this case by hand"
        )
    return value


def golden_case(span: dict[str, Any], request_id: str) -> dict[str, Any]:
    """The golden case (data/golden/*.jsonl's shape) for a served chain request's span; TraceNotUsable otherwise."""
    attributes = span.get("attributes") or {}
    body, answer = _json(attributes.get(INPUT)), _json(attributes.get(OUTPUT))
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        raise TraceNotUsable(f"request {request_id}: the trace holds no chain request with a `message` ({body!r})")
    if body.get("attachment"):
        raise TraceNotUsable(
            f"request {request_id}: the request had an attachment, which the span file does not keep as the golden "
            "suite names one (digits by index): write this case by hand"
        )
    if not isinstance(answer, dict) or "intent" not in answer:
        status = (span.get("status") or {}).get("description")
        raise TraceNotUsable(f"request {request_id}: the trace holds no chain answer (status: {status or 'none'})")
    expected: dict[str, Any] = {
        "intent": _clean(answer.get("intent"), "answer intent", request_id),
        "entities": _clean(answer.get("entities") or {}, "answer entities", request_id),
    }
    if answer.get("abstained"):
        expected["abstain"] = True
    return {
        "id": f"{LIVE_PREFIX}{request_id}",
        "message": _clean(body["message"], "message", request_id),
        "attachment": None,
        "expected": expected,
        "must_contain": [],
        "must_not_contain": [],
        "reference_reply": _clean(answer.get("reply"), "answer reply", request_id),
    }


def answered_by(span: dict[str, Any]) -> dict[str, Any]:
    """The release, version and variant that gave the traced answer (for the reviewer; not part of the case)."""
    meta = _json((span.get("attributes") or {}).get(METADATA)) or {}
    return {k: meta.get(k) for k in ("release", "version", "variant")}


def append_case(golden: Path, case: dict[str, Any]) -> int:
    """Append ``case`` to the suite ``golden``; the line number it landed on. GoldenSuiteError for an id the suite
    already holds (a case is reviewed once; editing it is editing that line)."""
    ids = {}
    if golden.is_file():
        for line_no, raw in byte_lines(golden):
            try:
                ids[json.loads(raw).get("id")] = line_no
            except (json.JSONDecodeError, AttributeError):
                raise GoldenSuiteError(f"{golden}:{line_no}: not a golden case") from None
    if case["id"] in ids:
        raise GoldenSuiteError(f"{golden}:{ids[case['id']]}: already holds case {case['id']!r}")
    text = golden.read_bytes() if golden.is_file() else b""
    ended = not text or text.endswith(b"\n")
    with golden.open("ab") as out:
        out.write((b"" if ended else b"\n") + (json.dumps(case, ensure_ascii=False) + "\n").encode())
    return text.count(b"\n") + (1 if ended else 2)
