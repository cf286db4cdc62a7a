"""Structured output: find the JSON object in a model's answer, validate it against the step's schema, and word
the follow-up message that asks the model to repair an invalid answer."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ValidationError


def extract_json(text: str) -> Any:
    """The answer as JSON, else the first JSON object inside it (models like to wrap JSON in prose or fences)."""
    try:
        return json.loads(text.strip())
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def short_error(exc: ValidationError) -> str:
    return "; ".join(".".join(str(p) for p in e["loc"]) + f": {e['msg']}" for e in exc.errors())


def parse_answer(text: str, schema: type[BaseModel]) -> tuple[dict[str, Any] | None, Any, str | None]:
    """Return (validated value, parsed JSON, error)."""
    parsed = extract_json(text)
    if not isinstance(parsed, dict):
        return None, parsed, "the answer is not a JSON object"
    try:
        return schema.model_validate(parsed).model_dump(), parsed, None
    except ValidationError as exc:
        return None, parsed, short_error(exc)


def repair_message(error: str, schema: dict[str, Any]) -> str:
    return (
        f"Your answer did not match the required format: {error}. Reply again with only one JSON object that "
        f"matches this JSON schema, and nothing else:\n{json.dumps(schema, sort_keys=True)}"
    )
