"""Flakiness of non-deterministic bindings (sampled LLM calls, GPU kernels): the same case run N times.

A case whose outcome differs across repeats cannot be trusted in a gate: a pass today may be a fail tomorrow.
The verdict holds a release when too large a share of cases is flaky.
"""

from __future__ import annotations

from typing import Any, Literal

from release_assets.promotion.policy import Verdict

MAX_EXAMPLES = 20


def flaky_cases(runs: dict[str, list[Any]]) -> list[str]:
    """Ids of cases whose repeated outcomes (bools, labels, any comparable values) are not all equal."""
    return sorted(case for case, outcomes in runs.items() if any(o != outcomes[0] for o in outcomes[1:]))


def flakiness_verdict(
    member: str,
    runs: dict[str, list[Any]],
    max_flaky_rate: float,
    *,
    gate: str = "flakiness",
    severity: Literal["block", "warn"] = "block",
) -> Verdict:
    """Fails when more than ``max_flaky_rate`` of the repeated cases disagree with themselves.

    Cases run fewer than twice cannot show flakiness and are left out; with none repeated, it is inconclusive.
    """
    bounds: dict[str, float | None] = {"min": None, "max": max_flaky_rate}
    repeated = {case: outcomes for case, outcomes in runs.items() if len(outcomes) >= 2}
    if not repeated:
        return Verdict(
            member, gate, "inconclusive", f"no case was run at least twice ({len(runs)} cases)", None, bounds, severity
        )
    flaky = flaky_cases(repeated)
    rate = len(flaky) / len(repeated)
    ok = rate <= max_flaky_rate
    reason = (
        f"{len(flaky)} of {len(repeated)} repeated cases gave different outcomes across runs (flaky rate "
        f"{rate:.4f}); the gate allows at most {max_flaky_rate:g}"
        + (f"; {len(runs) - len(repeated)} cases run once were not judged" if len(runs) > len(repeated) else "")
    )
    examples = [
        {
            "case": case,
            "runs": len(repeated[case]),
            "outcomes": [str(o) for o in repeated[case]],
            "distinct": len({str(o) for o in repeated[case]}),
        }
        for case in flaky[:MAX_EXAMPLES]
    ]
    return Verdict(member, gate, "passed" if ok else "failed", reason, rate, bounds, severity, examples=examples)
