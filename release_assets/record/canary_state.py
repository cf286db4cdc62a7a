"""A canary's state as the ledger records it: the step it is at, when that began, and the counters then.

Replayed from the events alone (``canary_started``, ``canary_baselined``, ``canary_advanced``, ``canary_breach``,
``canary_inconclusive``, ``canary_paused``, ``canary_resumed``, ``canary_aborted``, ``rolled_back`` with
``scope: canary``, ``promoted``), so a restarted monitor resumes exactly
where the last one left off; the counters are stored in the events in plain JSON
(``rollout/counters.snapshot_to_dict``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class CanaryState:
    """A canary in progress, as the ledger last left it: a restarted monitor resumes from exactly this."""

    version: str
    champion: str | None  # the champion it is judged against; another promotion or rollback ends the canary
    steps: list[int]
    step: int  # index into steps
    step_started: str  # ISO time the current step began: its bake time counts from here
    baseline: dict[str, Any] | None  # metric counters when the step began (snapshot_to_dict)
    breaches: int  # failed analyses in a row at this step
    approval: dict[str, Any]  # who started it and why: carried into the promotion at 100%
    inconclusive: int = 0  # inconclusive analyses (a marginal statistical score) at this step
    paused: str | None = None  # why the monitor paused it for a person (undecided in time); None: it runs

    @property
    def percent(self) -> int:
        return self.steps[self.step]


def next_canary(canary: CanaryState | None, e: dict[str, Any]) -> CanaryState | None:
    """The canary after event ``e``; events about another version than the running canary change nothing."""
    action = e["action"]
    if action == "canary_started":
        return CanaryState(
            version=e["to_version"],
            champion=e.get("from_version"),
            steps=list(e["rollout"]["steps"]),
            step=0,
            step_started=e["time"],
            baseline=e.get("baseline"),
            breaches=0,
            approval={
                "by": e["actor"],
                "reason": e["reason"],
                "time": e["time"],
                "override_weakened_gates": bool(e.get("override")),
            },
        )
    if canary is None or canary.version not in (e.get("to_version"), e.get("from_version")):
        return canary
    if action == "canary_advanced":
        return replace(
            canary, step=e["step"], step_started=e["time"], baseline=e.get("baseline"), breaches=0, inconclusive=0
        )
    if action == "canary_baselined":  # started without counters: its step begins when they were first read
        return replace(canary, step_started=e["time"], baseline=e["baseline"], breaches=0, inconclusive=0)
    if action == "canary_breach":
        return replace(canary, breaches=canary.breaches + 1)
    if action == "canary_inconclusive":
        return replace(canary, inconclusive=canary.inconclusive + 1)
    if action == "canary_paused":
        return replace(canary, paused=e["reason"])
    if action == "canary_resumed":  # a person let it go on: the step's time and counts start again, its data stays
        return replace(canary, paused=None, step_started=e["time"], breaches=0, inconclusive=0)
    if action == "canary_aborted" or (action == "rolled_back" and e.get("scope") == "canary"):
        return None
    if action == "promoted" and e["to_version"] == canary.version:
        return None
    return canary
