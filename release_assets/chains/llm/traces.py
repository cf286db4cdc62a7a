"""Traces of every call, redacted: configured output fields and patterns, and the API key, never reach a trace,
an error message or a repr."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from release_assets.chains.llm.base import Completion
from release_assets.chains.schema import REDACT_PATTERNS, StepSpec

REDACTED = "[REDACTED]"


class _Secret:
    """Holds the API key so that no repr, str or traceback frame shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def scrub(self, text: str) -> str:
        return text.replace(self._value, REDACTED) if self._value else text

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


class Redactor:
    """Traces keep prompts and answers for debugging, minus what ``redact:`` names: the values of those output
    fields, and anything the field's pattern (the step's own ``patterns:`` or a built-in one) matches."""

    def __init__(self, step: StepSpec, secret: _Secret | None = None) -> None:
        names = step.llm.redact if step.llm else []
        self.fields = {n for n in names if n in step.output}
        self.patterns = [
            re.compile(step.patterns.get(n) or REDACT_PATTERNS[n])
            for n in names
            if n in step.patterns or n in REDACT_PATTERNS
        ]
        self.secret = secret

    def text(self, text: str, values: Sequence[Any] = ()) -> str:
        if self.secret is not None:
            text = self.secret.scrub(text)
        for pattern in self.patterns:
            text = pattern.sub(REDACTED, text)
        for value in values:
            if value not in (None, "") and str(value) in text:
                text = text.replace(str(value), REDACTED)
        return text

    def values(self, parsed: Any) -> list[Any]:
        return [parsed.get(f) for f in self.fields] if isinstance(parsed, dict) else []

    def output(self, parsed: Any) -> Any:
        if not isinstance(parsed, dict):
            return parsed
        return {k: (REDACTED if k in self.fields and v is not None else v) for k, v in parsed.items()}


def trace(
    step: StepSpec,
    case_id: str,
    attempt: int,
    messages: list[dict[str, str]],
    redactor: Redactor,
    completion: Completion | None = None,
    parsed: Any = None,
    error: str | None = None,
    wall_ms: float | None = None,
) -> dict[str, Any]:
    """One attempt of one case, as stored with the evaluation: everything shown passes through the redactor."""
    values = redactor.values(parsed)
    cfg = step.llm
    return {
        "case": case_id,
        "step": step.id,
        "binding": step.binding,
        "model": (cfg.model or cfg.path) if cfg else None,
        "attempt": attempt,
        "messages": [{"role": m["role"], "content": redactor.text(m["content"], values)} for m in messages],
        "raw": redactor.text(completion.text, values) if completion else None,
        "parsed": redactor.output(parsed),
        "error": redactor.text(error, values) if error else None,
        "latency_ms": completion.latency_ms if completion else None,
        "wall_ms": wall_ms,
        "tokens_in": completion.tokens_in if completion else 0,
        "tokens_out": completion.tokens_out if completion else 0,
        "cache_hit": completion.cache_hit if completion else False,
    }
