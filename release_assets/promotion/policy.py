"""Every promotion decision, as pure functions returning verdicts.

The same functions serve the Dagster asset checks (what a person sees in the UI) and the release unit (which
re-decides before publishing, because blocking checks only act inside one run). So a run that materializes the
release unit alone can never publish past a failed gate.
"""

from __future__ import annotations

import math
from typing import Any

from release_assets.manifest import Threshold
from release_assets.verdict import Status, Verdict


def bounds_text(bounds: dict[str, float | None] | None) -> str:
    """``>= 0.9 and <= 1``: the one wording of a threshold, in reasons, checks, tables and the CLI."""
    bounds = bounds or {}
    parts = [f"{sign} {bounds[op]:g}" for op, sign in (("min", ">="), ("max", "<=")) if bounds.get(op) is not None]
    return " and ".join(parts)


def threshold_verdict(member: str, gate: str, observed: float | None, t: Threshold, **extra: Any) -> Verdict:
    bounds = {"min": t.min, "max": t.max}
    if observed is None or (isinstance(observed, float) and math.isnan(observed)):
        return Verdict(
            member,
            gate,
            "inconclusive",
            f"{gate} was not measured",
            None,
            bounds,
            t.severity,
            on_inconclusive=t.on_inconclusive,
            **extra,
        )
    ok = (t.min is None or observed >= t.min) and (t.max is None or observed <= t.max)
    verb = "meets" if ok else "violates"
    reason = f"{gate} = {observed:.4g} {verb} the gate {bounds_text({'min': t.min, 'max': t.max})}"
    status: Status = "passed" if ok else "failed"
    return Verdict(
        member, gate, status, reason, float(observed), bounds, t.severity, on_inconclusive=t.on_inconclusive, **extra
    )


def release_decision(verdicts: list[Verdict]) -> tuple[bool, list[Verdict]]:
    """Whether a release may publish, and the verdicts that hold it back."""
    holding = [v for v in verdicts if v.holds_release]
    return not holding, holding
