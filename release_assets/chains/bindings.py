"""What turns a step's rendered text into its raw output: the release's own models, patterns, or templates.

Each binding works on a whole batch of cases at once, so a classifier sees one batched forward pass per step
rather than one per case.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from release_assets.chains.spec import StepSpec
from release_assets.models.registry import Predictor, predict_labels


def classify(step: StepSpec, texts: Sequence[str], predictor: Predictor) -> list[dict[str, Any]]:
    enum_field = next(name for name, f in step.fields().items() if f.type == "enum")
    labels, proba = predict_labels(predictor, [{"text": t} for t in texts])
    wants_confidence = "confidence" in step.output
    return [
        {enum_field: label, **({"confidence": float(p.max())} if wants_confidence else {})}
        for label, p in zip(labels, proba, strict=True)
    ]


def extract(step: StepSpec, text: str, catalogue: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, pattern in step.patterns.items():
        match = re.search(pattern, text)
        if match:
            out[name] = match.group(1) if match.groups() else match.group(0)
    lowered = text.lower()
    for product in sorted(catalogue, key=len, reverse=True):  # longest first: "Desk Lamp Pro" over "Desk Lamp"
        if product.lower() in lowered:
            out["product"] = product
            break
    return out


def read_sequences(images: Sequence[Sequence[Sequence[int]]], predictor: Predictor) -> list[str]:
    """Read each attachment (a sequence of 8x8 digit images) into a string, in one batched forward pass."""
    flat = [{"pixels": list(img)} for seq in images for img in seq]
    if not flat:
        return ["" for _ in images]
    labels, _ = predict_labels(predictor, flat)
    out, i = [], 0
    for seq in images:
        out.append("".join(labels[i : i + len(seq)]))
        i += len(seq)
    return out
