"""The shadow gates: a candidate's answers against the champion's on the same requests, pair by pair.

One decision for both kinds of evidence: the ``shadow_comparison`` asset (recorded traffic replayed offline) and
the ``shadow_report`` asset (live pairs collected by ``serve``). Both summaries are
:func:`release_assets.evaluation.shadow_pairs.summarize` output plus ``champion``, the version compared with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from release_assets.promotion.policy import Verdict, threshold_verdict

if TYPE_CHECKING:
    from release_assets.manifest import Threshold
    from release_assets.promotion.inputs import MemberInputs

MIN_PAIRS = 30  # below this a rate is mostly noise: inconclusive, never a pass (`params: {min_pairs: n}`)


def shadow_verdict(member: str, gate: str, summary: dict[str, Any], t: Threshold) -> Verdict:
    """``gate``'s metric from a shadow summary against the manifest bound; inconclusive without a champion or with
    fewer than ``min_pairs`` pairs; the disagreeing pairs attached when it does not pass."""
    metrics = summary.get("metrics", {})
    bounds = {"min": t.min, "max": t.max}
    pairs, needed = int(metrics.get("pairs") or 0), int(t.params.get("min_pairs", MIN_PAIRS))
    reason = None
    if summary.get("champion") is None:
        reason = "no champion to compare with"
    elif pairs < needed:
        reason = f"{pairs} shadow pair(s), fewer than the {needed} needed (params.min_pairs) to judge {gate}"
    if reason is not None:
        observed = metrics.get(gate)
        return Verdict(
            member, gate, "inconclusive", reason, observed, bounds, t.severity, on_inconclusive=t.on_inconclusive
        )
    verdict = threshold_verdict(member, gate, metrics.get(gate), t)
    verdict = replace(verdict, reason=f"{verdict.reason} (against champion {summary['champion']}, {pairs} pairs)")
    if verdict.status != "passed":
        verdict = replace(verdict, examples=summary.get("examples", []))
    return verdict


def decide(gate: str) -> Callable[..., Verdict]:
    """The gate table's decide function for ``gate``: reads the member's ``shadow`` asset summary."""

    def decide_shadow(member: str, inputs: MemberInputs, t: Threshold) -> Verdict:
        return shadow_verdict(member, gate, inputs.refs["shadow"].summary, t)

    decide_shadow.__name__ = f"decide_{gate}"
    return decide_shadow
