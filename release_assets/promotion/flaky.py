"""Flakiness of non-deterministic bindings (sampled LLM calls): the same case run N times.

A case whose outcome differs across repeats cannot be trusted in a gate: a pass today may be a fail tomorrow.
The golden evaluation reports the share of such cases as ``flaky_rate``, which the manifest gates like any metric.
"""

from __future__ import annotations

from typing import Any


def flaky_cases(runs: dict[str, list[Any]]) -> list[str]:
    """Ids of cases whose repeated outcomes (bools, labels, any comparable values) are not all equal."""
    return sorted(case for case, outcomes in runs.items() if any(o != outcomes[0] for o in outcomes[1:]))
