"""Every gate as promotion decides it: its rule, declared once in ``manifest/gates.py`` (member kinds, the asset it
reads, the bound and its range), with how it decides attached here.

A gate with a decide function reads the member's inputs (:mod:`release_assets.promotion.catalogue`, the shadow
gates); one without compares the metric of its name in the member's summary with the bound. An explain function
adds where a failing metric came from to the reason. The checks and the release unit read this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from release_assets.manifest.gates import RULES, GateRule, rules_for, user_metric_rule
from release_assets.promotion import catalogue, contract_gate, explain, golden_regression, judge_gates, shadow_gates


@dataclass(frozen=True)
class GateSpec(GateRule):
    # None: the member's summary reports a metric of the gate's name, compared with the bound.
    decide: Callable[..., Any] | None = None
    # Adds where a failing metric came from to the reason (the failing rows, the most common errors).
    explain: Callable[..., Any] | None = None


# Gates that read data rather than one number from the member's summary.
DECIDE: dict[str, Callable[..., Any]] = {
    "duplicates": catalogue.duplicates,
    "leakage": catalogue.leakage,
    "label_coverage": catalogue.label_coverage,
    "drift": catalogue.drift,
    "slice_gap": catalogue.slice_gap,
    "regression": catalogue.regression,
    "golden_regression": golden_regression.golden_regression,
    "contract": contract_gate.contract,
    # the candidate against the champion on the same requests, recorded (shadow_comparison) or live (shadow_report)
    **{name: shadow_gates.decide(name) for name, rule in RULES.items() if rule.reads == "shadow"},
    # the judge: inconclusive when it could not answer; its worst cases or disagreements as the table
    **{name: judge_gates.decide(name) for name in RULES if name.startswith("judge_")},
}
EXPLAIN: dict[str, Callable[..., Any]] = {"invalid_rows": explain.invalid_rows, "format_valid": explain.format_valid}
assert set(DECIDE) | set(EXPLAIN) <= set(RULES), "a decision attached to an undeclared gate"

GATES: dict[str, GateSpec] = {
    name: GateSpec(
        **{f.name: getattr(rule, f.name) for f in fields(GateRule)}, decide=DECIDE.get(name), explain=EXPLAIN.get(name)
    )
    for name, rule in RULES.items()
}


def gate_spec(kind: str, gate: str, spec_of: Any = None) -> GateSpec:
    """The gate ``gate`` of a member of ``kind``: a shared gate, or a metric the kind reports itself (a plugin's)
    or the member's own ``metrics:`` function returns (``spec_of``: its manifest entry), each compared with its
    bound like any summary metric."""
    rule = rules_for(kind).get(gate) or user_metric_rule(kind, gate, spec_of)
    if rule is None:
        raise KeyError(f"{kind} has no gate {gate!r}")
    return GATES.get(gate) or GateSpec(**{f.name: getattr(rule, f.name) for f in fields(GateRule)})
