"""Slice gap: a model may be accurate overall and still fail one kind of input (chat messages, one class).

The gate compares the worst slice with the overall accuracy. Slices with fewer than ``min_n`` rows are listed but
not judged: on a handful of rows one mistake moves accuracy by tens of points, which is noise, not a finding.
"""

from __future__ import annotations

from typing import Any, Literal

from release_assets.promotion.policy import Verdict


def slice_gap_verdict(
    member: str,
    overall_accuracy: float | None,
    slices: dict[str, dict[str, dict[str, Any]]],
    max_gap: float,
    min_n: int = 10,
    *,
    gate: str = "slice_gap",
    severity: Literal["block", "warn"] = "block",
) -> Verdict:
    """Fails when the worst slice (``n >= min_n``) trails ``overall_accuracy`` by more than ``max_gap``.

    ``slices`` is the evaluation summary's ``{field: {value: {"accuracy", "n"}}}``.
    """
    bounds: dict[str, float | None] = {"min": None, "max": max_gap}
    if overall_accuracy is None:
        return Verdict(member, gate, "inconclusive", "overall accuracy was not measured", None, bounds, severity)
    rows: list[dict[str, Any]] = [
        {
            "field": field,
            "value": value,
            "accuracy": float(s["accuracy"]),
            "n": int(s["n"]),
            "gap": float(overall_accuracy - s["accuracy"]),
            "judged": int(s["n"]) >= min_n,
        }
        for field, values in slices.items()
        for value, s in values.items()
    ]
    rows.sort(key=lambda r: (not r["judged"], -r["gap"], r["field"], r["value"]))
    judged = [r for r in rows if r["judged"]]
    if not judged:
        return Verdict(
            member,
            gate,
            "inconclusive",
            f"no slice has at least {min_n} rows ({len(rows)} slices in all)",
            None,
            bounds,
            severity,
            examples=rows,
        )
    worst = judged[0]
    ok = worst["gap"] <= max_gap
    reason = (
        f"worst slice {worst['field']}={worst['value']} has accuracy {worst['accuracy']:.4f} on {worst['n']} rows, "
        f"{worst['gap']:.4f} below the overall {overall_accuracy:.4f}; the gate allows a gap of at most {max_gap:g} "
        f"({len(rows) - len(judged)} slices under {min_n} rows not judged)"
    )
    return Verdict(member, gate, "passed" if ok else "failed", reason, worst["gap"], bounds, severity, examples=rows)
