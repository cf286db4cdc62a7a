"""The judge's gates: the share of golden replies it passes (``judge_pass_rate``, ``judge_<rubric>``) and its
agreement with people on the labelled set's held-out half (``judge_agreement``, ``judge_kappa``).

A judge that could not answer every case (endpoint down, time-out, malformed answer) decides nothing: the gate is
inconclusive with the judge's own error, which holds the release unless the manifest says ``on_inconclusive:
warn``. A judge verdict is never assumed. Failing or undecided gates carry the lowest-scored replies with the
judge's reasons (or, for agreement, the labelled replies it disagrees on) as the check's table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from release_assets.promotion.policy import Verdict, threshold_verdict

if TYPE_CHECKING:
    from release_assets.manifest import Threshold
    from release_assets.promotion.inputs import MemberInputs

CALIBRATION_GATES = {"judge_agreement": "accuracy", "judge_kappa": "kappa"}


def _inconclusive(member: str, gate: str, reason: str, t: Threshold, examples: list[dict[str, Any]]) -> Verdict:
    bounds = {"min": t.min, "max": t.max}
    return Verdict(
        member,
        gate,
        "inconclusive",
        reason,
        None,
        bounds,
        t.severity,
        examples=examples,
        on_inconclusive=t.on_inconclusive,
    )


def judge_verdict(member: str, gate: str, summary: dict[str, Any], t: Threshold) -> Verdict:
    part = summary.get("judge")
    if part is None:
        return _inconclusive(member, gate, f"{gate} was not measured: the chain has no `judge:` section", t, [])
    metrics = summary.get("metrics", {})
    if gate in CALIBRATION_GATES:
        cal = part.get("calibration")
        if cal is None:
            reason = f"{gate} was not measured: no labelled set (members.{member}.judge_labels) to calibrate against"
            return _inconclusive(member, gate, reason, t, [])
        if cal.get("unanswered"):
            reason = (
                f"the judge could not answer {cal['unanswered']} of {cal['rows']} labelled replies, so its "
                f"agreement is unknown: {cal.get('first_error')}"
            )
            return _inconclusive(member, gate, reason, t, [])
        verdict = threshold_verdict(member, gate, metrics.get(gate), t)
        figure = cal["overall"]
        low, high = figure[f"{CALIBRATION_GATES[gate]}_ci"]
        detail = f" on {figure['rows']} held-out labelled replies (95% CI {low:.3f}-{high:.3f})"
        verdict = replace(verdict, reason=verdict.reason + detail)
        return replace(verdict, examples=cal.get("disagreements", [])) if verdict.status != "passed" else verdict
    if part.get("unanswered"):
        reason = (
            f"the judge could not answer {part['unanswered']} of {part['cases']} golden replies: {part['first_error']}"
        )
        return _inconclusive(member, gate, reason, t, part.get("worst", []))
    verdict = threshold_verdict(member, gate, metrics.get(gate), t)
    return replace(verdict, examples=part.get("worst", [])) if verdict.status != "passed" else verdict


def decide(gate: str) -> Callable[..., Verdict]:
    def decide_gate(member: str, inputs: MemberInputs, t: Threshold) -> Verdict:
        return judge_verdict(member, gate, inputs.refs["evaluation"].summary, t)

    return decide_gate
