"""Span export for ``traces``: the ``Redactor``, a wrapper that redacts before any exporter, and a size-rotated
JSONL file.

Redaction sits in the export path rather than where attributes are set, so nothing (an exception message recorded
by the SDK, an attribute another module adds) reaches a file or a collector unredacted.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from release_assets.chains.llm.traces import REDACTED
from release_assets.chains.llm.traces import Redactor as StepRedactor
from release_assets.core.atomic import folder_locked
from release_assets.core.settings import Settings

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 5
REDACT_ENV = "RELEASE_ASSETS_TRACE_REDACT"  # Settings.trace_redact
# (name, regex); every match becomes [REDACTED]. Credentials come first: a key can hold digits or an address that
# a later rule would only partly replace.
DEFAULT_RULES: list[tuple[str, str]] = [
    ("bearer", r"(?i)\bbearer\s+[\w.~+/=-]{8,}"),
    ("api_key", r"\bsk-[\w-]{16,}"),
    ("credential", r"(?i)\b(?:api[_-]?key|token|secret|password)\b[\"']?\s*[:=]\s*[\"']?[^\s\"',;]{6,}"),
    ("hex_secret", r"\b[0-9a-fA-F]{32,}\b"),
    # Long base64/base64url runs mixing digits and both cases: secrets do, words and file paths rarely do.
    # The first lookahead fails fast on the short words of ordinary text before the costlier ones run.
    ("base64_secret", r"(?<![\w+/-])(?=[\w+/-]{32})(?=[\w+/-]*\d)(?=[\w+/-]*[A-Z])(?=[\w+/-]*[a-z])[\w+/-]{32,}={0,2}"),
    # Anchored at the start of a run and possessive: linear on "a-a-a-..." without an "@" (a client's payload).
    ("email", r"(?<![\w.+-])[\w.+-]++@[\w-]+\.[\w.-]+\w"),
    # The helpdesk's order numbers, also inside "ord12345", "no.12345" or "\n12345"; not the fraction of a decimal
    # number ("0.70995"), so probabilities and scores in traces stay readable. Five digits with no digit (nor a
    # digit and a dot) before them and none after, written to start with a digit: the regex engine then skips
    # straight to digits, where a leading lookbehind would be tried at every position of every string.
    ("order_id", r"\d(?<!\d{2})(?<!\d\.\d)\d{4}(?!\d)"),
]


class Redactor(StepRedactor):
    """The LLM traces' redactor (``chains/llm/traces.py``) with project-wide rules instead of one step's
    ``redact:`` list: the inherited ``text`` replaces every match of every rule with ``[REDACTED]``.

    Configure with a YAML or JSON file (``Redactor.from_file``; ``$RELEASE_ASSETS_TRACE_REDACT`` names one)::

        defaults: true          # keep DEFAULT_RULES (the default); false: only the rules below
        rules:
          phone: '\\+?\\d[\\d ()-]{7,}\\d'   # added
          order_id: null        # a default dropped; a default's name with a regex replaces it
    """

    def __init__(self, rules: list[tuple[str, str]] | None = None, where: str = "redaction rules") -> None:
        # Not super().__init__, which reads a step's config: here the rules are the whole configuration, no output
        # field is withheld by name and no API key is known (LLM traces arrive with theirs already scrubbed).
        self.rules = list(DEFAULT_RULES if rules is None else rules)
        self.patterns = [_compile(name, pattern, where) for name, pattern in self.rules]
        self.fields, self.secret = set(), None
        # One pass over each string instead of one per rule: the exporter redacts every attribute of every span
        # while holding the GIL, and seven passes per attribute showed up as request tail latency in `serve`.
        self._combined = re.compile("|".join(_scoped(p) for _, p in self.rules)) if self.rules else None
        # Even one pass is ~1 us a character (every rule tried at every position). With the default rules, a
        # string is first asked which rules could match it at all, and only those run (most strings: none); short
        # strings (span kinds, mime types, ids) are remembered with their answer.
        self._prefilter = set(self.rules) <= set(DEFAULT_RULES)
        self._subsets: dict[frozenset[str], re.Pattern[str] | None] = {}
        self._short: dict[str, str] = {}

    def text(self, text: str, values: Sequence[Any] = ()) -> str:
        if self._combined is not None:
            text = self._rules_applied(self._combined, text)
        for value in values:
            if value not in (None, "") and str(value) in text:
                text = text.replace(str(value), REDACTED)
        return text

    def _rules_applied(self, combined: re.Pattern[str], text: str) -> str:
        short = len(text) <= SHORT_CHARS
        if short:
            found = self._short.get(text)
            if found is not None:
                return found
        if self._prefilter:
            pattern = self._only(_default_rules_that_may_match(text))
            redacted = text if pattern is None else pattern.sub(REDACTED, text)
        else:
            redacted = combined.sub(REDACTED, text)
        if short:
            if len(self._short) >= SHORT_REMEMBERED:  # bounded, whatever the traffic; dict ops are atomic under the GIL
                self._short.clear()
            self._short[text] = redacted
        return redacted

    def _only(self, names: frozenset[str] | None) -> re.Pattern[str] | None:
        """The combined pattern of these rules alone, in their order (None: every rule); None when there are none.
        A rule that cannot match anywhere in a string changes nothing there, so leaving it out gives the same result."""
        if names is None:
            return self._combined
        if names not in self._subsets:
            chosen = [_scoped(pattern) for name, pattern in self.rules if name in names]
            self._subsets[names] = re.compile("|".join(chosen)) if chosen else None
        return self._subsets[names]

    @classmethod
    def from_file(cls, path: Path) -> Redactor:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}  # JSON is YAML too
        if not isinstance(data, dict) or not isinstance(data.get("rules") or {}, dict):
            raise ValueError(f"{path}: expected `rules: {{name: regex or null}}` and optionally `defaults: false`")
        rules = dict(DEFAULT_RULES) if data.get("defaults", True) else {}
        for name, pattern in (data.get("rules") or {}).items():
            if pattern is None:
                rules.pop(str(name), None)
            else:
                rules[str(name)] = str(pattern)
        return cls(list(rules.items()), where=str(path))

    @classmethod
    def from_env(cls) -> Redactor:
        """The rules of the file RELEASE_ASSETS_TRACE_REDACT names (read afresh), else the defaults."""

        path = Settings().trace_redact
        return cls.from_file(path) if path else cls()


SHORT_CHARS = 64  # strings this short are remembered with their redacted form...
SHORT_REMEMBERED = 8192  # ...this many at most (about 1 MB)
# What each default rule needs in ASCII text before it can match anywhere in it (a superset of its matches).
# order_id itself on ASCII text: five digits, not after a digit or a digit and a dot, not before a digit. Written to
# start with a digit, so the regex engine skips straight to digits (a leading lookbehind is tried at every position:
# three times slower on a helpdesk span).
_FIVE_DIGITS = re.compile(r"[0-9](?<![0-9]{2})(?<![0-9]\.[0-9])[0-9]{4}(?![0-9])")
# hex_secret and base64_secret both need a run of 32 of these; only such runs (rare) are looked at further.
_WORD_RUN = re.compile(r"[A-Za-z0-9_+/-]{32,}")
_HEX_RUN = re.compile(r"[0-9a-fA-F]{32}")


def _default_rules_that_may_match(text: str) -> frozenset[str] | None:
    """The names of the DEFAULT_RULES that could match somewhere in ``text``; None (all of them) for non-ASCII
    text: the rules' ``\\w``, ``\\d`` and ``(?i)`` read Unicode (the Kelvin sign matches ``k``), these checks do not.

    Each check is narrow enough that ordinary spans pass every one: a request id (hex with hyphens, lower case) or
    a version digest is no hex secret and no base64 run, so the metadata and answer of every span do not pay for
    the three costliest rules (about 50 us a string)."""
    if not text.isascii():
        return None
    lower = text.lower()
    names = []
    if "bearer" in lower:
        names.append("bearer")
    if "key" in lower or "token" in lower or "secret" in lower or "password" in lower:
        names.append("credential")
    if "sk-" in text:
        names.append("api_key")
    if "@" in text:
        names.append("email")
    if _FIVE_DIGITS.search(text) is not None:
        names.append("order_id")
    for found in _WORD_RUN.finditer(text):
        run = found.group()
        if _HEX_RUN.search(run) is not None:
            names.append("hex_secret")
        if _mixed(run):
            names.append("base64_secret")
    return frozenset(names)


def _mixed(run: str) -> bool:
    """A digit, an upper-case and a lower-case letter in ``run`` (ASCII): what base64_secret's lookaheads need."""
    return not run.isalpha() and run.lower() != run and run.upper() != run and any(c.isdigit() for c in run)


def _scoped(pattern: str) -> str:
    """A rule as one alternative of the combined pattern: a leading global flag such as ``(?i)`` becomes a scoped
    group, since Python refuses global flags anywhere but at the very start."""
    match = re.match(r"\(\?([aiLmsux]+)\)", pattern)
    if match:
        return f"(?{match.group(1)}:{pattern[match.end() :]})"
    return f"(?:{pattern})"


def _compile(name: str, pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{where}: rule {name!r}: invalid regular expression: {exc}") from None


MAX_ATTRIBUTE_CHARS = 4096  # a span carries the gist; redacting a 64 KiB client payload would stall the exporter


def _redact_value(value: Any, text: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        clipped = value if len(value) <= MAX_ATTRIBUTE_CHARS else value[:MAX_ATTRIBUTE_CHARS] + "...[truncated]"
        return text(clipped)
    if isinstance(value, tuple | list):
        return type(value)(_redact_value(v, text) for v in value)
    return value


def _redact_attributes(attributes: Any, text: Callable[[str], str]) -> dict[str, Any]:
    return {k: _redact_value(v, text) for k, v in (attributes or {}).items()}


def redact_span(span: ReadableSpan, text: Callable[[str], str]) -> ReadableSpan:
    """A copy of ``span`` whose string attributes, event attributes and status description passed ``text``."""
    status = span.status
    if status.description:
        status = Status(status.status_code, text(status.description))
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=_redact_attributes(span.attributes, text),
        events=[Event(e.name, _redact_attributes(e.attributes, text), e.timestamp) for e in span.events],
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class RedactingExporter(SpanExporter):
    """Passes every span through ``text`` (e.g. ``Redactor.text``) before the wrapped exporter sees it."""

    def __init__(self, inner: SpanExporter, text: Callable[[str], str]) -> None:
        self.inner, self.text = inner, text

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        # A step's output is also its span's output.value, and the reply is in the request's answer too: within a
        # batch each distinct string is redacted once.
        done: dict[str, str] = {}

        def text(value: str) -> str:
            found = done.get(value)
            if found is None:
                found = done[value] = self.text(value)
            return found

        return self.inner.export([redact_span(s, text) for s in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _iso(ns: int | None) -> str | None:
    """``2026-12-07T14:34:00.182065Z``: UTC, to the microsecond (truncated). Twice per span, on the exporter's
    thread: formatted directly, at a third of what ``datetime.isoformat`` costs."""
    if ns is None:
        return None
    seconds, fraction = divmod(ns, 1_000_000_000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{fraction // 1000:06d}Z"


def _jsonl_line(record: dict[str, Any]) -> bytes:
    """One JSON line, readable UTF-8 where it can be. A request may carry a lone surrogate (``"\\ud800"`` is valid
    JSON, not valid UTF-8): that span is written with ASCII escapes rather than failing its whole batch."""
    try:
        return (json.dumps(record, default=str, ensure_ascii=False) + "\n").encode()
    except UnicodeEncodeError:
        return (json.dumps(record, default=str) + "\n").encode()


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """One span as one JSON object: ids in OTLP's hex form, so a line can be matched with the collector's view."""
    ctx = span.context
    return {
        "name": span.name,
        "trace_id": f"{ctx.trace_id:032x}" if ctx else None,
        "span_id": f"{ctx.span_id:016x}" if ctx else None,
        "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "kind": span.kind.name,
        "start_time": _iso(span.start_time),
        "end_time": _iso(span.end_time),
        "duration_ms": (span.end_time - span.start_time) / 1e6 if span.end_time and span.start_time else None,
        "status": {"code": span.status.status_code.name, "description": span.status.description},
        "attributes": dict(span.attributes or {}),
        "events": [
            {"name": e.name, "time": _iso(e.timestamp), "attributes": dict(e.attributes or {})} for e in span.events
        ],
        "service": span.resource.attributes.get("service.name") if span.resource else None,
    }


class JsonlSpanExporter(SpanExporter):
    """One span per line in ``path``; past ``max_bytes`` the file becomes ``path.1`` (``path.1`` -> ``path.2``,
    ...) and the oldest beyond ``backups`` is deleted. A line is never split across files, so every file parses.

    Thread-safe: the batch processor's worker and a caller's ``force_flush`` may export at the same time. Process-safe
    too: the workers of ``serve --workers N`` write the same file, each batch whole under an exclusive lock on
    the file's folder (so lines never interleave), reading the file's size from the file itself and reopening it
    when another worker has rotated it (so one rotation happens per ``max_bytes``, and no generation is
    overwritten). The folder, not a ``path.lock`` beside the file: a golden run writes its traces into an artifact
    folder, and a lock file there would become a member file of the release bundle.
    """

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES, backups: int = DEFAULT_BACKUPS) -> None:
        if max_bytes <= 0 or backups < 0:
            raise ValueError(f"max_bytes must be > 0 and backups >= 0 (got {max_bytes}, {backups})")
        self.path, self.max_bytes, self.backups = Path(path), max_bytes, backups
        self._lock = threading.Lock()
        self._fh: Any = None
        self._closed = False

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("ab")

    def _current(self) -> int:
        """Open the file ``path`` names now (another worker may have rotated the one held); its size."""
        if self._fh is not None:
            try:
                if os.stat(self.path).st_ino == os.fstat(self._fh.fileno()).st_ino:
                    return os.fstat(self._fh.fileno()).st_size
            except FileNotFoundError:
                pass
            self._fh.close()
        self._open()
        return os.fstat(self._fh.fileno()).st_size

    def _rotate(self) -> None:
        self._fh.close()
        self._fh = None
        if self.backups == 0:
            self.path.unlink()
        else:
            for n in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{n}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._open()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [_jsonl_line(span_record(s)) for s in spans]
        with self._lock:
            if self._closed:
                return SpanExportResult.FAILURE
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with folder_locked(self.path.parent):
                    size = self._current()
                    for line in lines:
                        # An oversized line still gets written, alone in a fresh file, rather than dropped.
                        if size and size + len(line) > self.max_bytes:
                            self._rotate()
                            size = 0
                        self._fh.write(line)
                        size += len(line)
                    self._fh.flush()  # per batch, inside the lock: a crash loses at most the batch in flight
            except OSError:
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every export already flushed

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            if self._fh is not None:
                self._fh.close()
                self._fh = None
