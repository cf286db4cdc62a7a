"""Every promotion decision, as pure functions returning verdicts.

The same functions serve the Dagster asset checks (what a person sees in the UI) and the release unit (which
re-decides before publishing, because blocking checks only act inside one run). So a run that materializes the
release unit alone can never publish past a failed gate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from release_assets.manifest import ReleaseManifest, Threshold

Status = Literal["passed", "failed", "inconclusive"]


@dataclass(frozen=True)
class Verdict:
    member: str
    gate: str
    status: Status
    reason: str
    observed: float | None
    threshold: dict[str, float | None]
    severity: Literal["block", "warn"] = "block"
    champion: float | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def holds_release(self) -> bool:
        """Failed or undecidable blocking gates hold a release; ``warn`` gates only report."""
        return self.severity == "block" and self.status != "passed"

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "examples"}


def _bound_text(t: Threshold) -> str:
    parts = []
    if t.min is not None:
        parts.append(f">= {t.min:g}")
    if t.max is not None:
        parts.append(f"<= {t.max:g}")
    return " and ".join(parts)


def threshold_verdict(member: str, gate: str, observed: float | None, t: Threshold, **extra: Any) -> Verdict:
    bounds = {"min": t.min, "max": t.max}
    if observed is None or (isinstance(observed, float) and math.isnan(observed)):
        return Verdict(member, gate, "inconclusive", f"{gate} was not measured", None, bounds, t.severity, **extra)
    ok = (t.min is None or observed >= t.min) and (t.max is None or observed <= t.max)
    verb = "meets" if ok else "violates"
    reason = f"{gate} = {observed:.4g} {verb} the gate {_bound_text(t)}"
    return Verdict(member, gate, "passed" if ok else "failed", reason, float(observed), bounds, t.severity, **extra)


def member_verdicts(
    manifest: ReleaseManifest, member: str, summary: dict[str, Any], *, with_examples: bool = False
) -> list[Verdict]:
    """Verdicts for every gate the manifest sets on ``member``, from the summary its evaluation produced."""
    metrics = summary.get("metrics", {})
    examples = summary.get("examples", []) if with_examples else []
    return [
        threshold_verdict(member, gate, metrics.get(gate), t, examples=examples)
        for gate, t in sorted(manifest.gates.get(member, {}).items())
    ]


def release_decision(verdicts: list[Verdict]) -> tuple[bool, list[Verdict]]:
    """Whether a release may publish, and the verdicts that hold it back."""
    holding = [v for v in verdicts if v.holds_release]
    return not holding, holding
