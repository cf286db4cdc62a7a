"""Chain steps in the team's own Python (`binding: python:your_models.steps:classify`): each is called as
`function(text, context)` with the step's rendered template and what templates see, and returns the step's output."""

from __future__ import annotations

import re
from typing import Any

ORDER = re.compile(r"(?<!\d)(\d{5})(?!\d)")


def classify(text: str, context: dict[str, Any]) -> dict[str, Any]:
    lowered = text.lower()
    intent = "refund" if "refund" in lowered else "order_status" if "where" in lowered else "other"
    return {"intent": intent, "confidence": 1.0 if intent != "other" else 0.5}


def extract(text: str, context: dict[str, Any]) -> dict[str, Any]:
    match = ORDER.search(text)
    return {"order_id": match.group(1) if match else None}
