"""The ``contract`` gate: each expectation a member has of the members it is built from, against the interface
each of them reported, decided from the built artifacts alone (no evaluation runs first, none is needed).

Expectations come from the consumer's build (a chain records what its steps branch on, ``chains/contract.py``)
and from its manifest entry (``expects:``); interfaces from each producer's build summary
(``manifest/contracts.py``). The champion's interfaces, recorded in its published manifest, tell a label that
disappeared ("no longer emits") from one that was never there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from release_assets.manifest.contracts import (
    Interface,
    offered_interface,
    reported_expectations,
    stated_expectations,
    violations,
)
from release_assets.promotion.inputs import MemberInputs
from release_assets.promotion.policy import Verdict, bounds_text

if TYPE_CHECKING:
    from release_assets.manifest import Threshold

PRODUCER_PREFIX = "producer__"  # promotion.gates.producer_role
BUILT_ROLES = ("chain", "model", "split")  # the consumer's own built artifact, by family


def contract(member: str, inputs: MemberInputs, t: Threshold) -> Verdict:
    bounds = {"min": t.min, "max": t.max}
    own = next(inputs.refs[r] for r in BUILT_ROLES if r in inputs.refs)
    expects = reported_expectations(own.summary)
    config = inputs.config
    if config is not None:
        expects += stated_expectations(member, config.expects)
    offered = {
        role.removeprefix(PRODUCER_PREFIX): offered_interface(role.removeprefix(PRODUCER_PREFIX), ref.kind, ref.summary)
        for role, ref in inputs.refs.items()
        if role.startswith(PRODUCER_PREFIX)
    }
    broken = violations(expects, offered, _champion_interfaces(inputs, offered))
    producers = ", ".join(sorted({e.producer for e in expects})) or "none"
    limit = int(t.max if t.max is not None else 0)
    if len(broken) <= limit:
        reason = f"{len(expects)} expectation(s) of {producers} met" + (
            f"; {len(broken)} unmet, within the gate {bounds_text(bounds)}: " + "; ".join(broken) if broken else ""
        )
        return Verdict(member, "contract", "passed", reason, float(len(broken)), bounds, t.severity)
    reason = f"{len(broken)} of {len(expects)} expectation(s) unmet: " + "; ".join(broken)
    examples = [{"unmet expectation": line} for line in broken]
    return Verdict(member, "contract", "failed", reason, float(len(broken)), bounds, t.severity, examples=examples)


def _champion_interfaces(inputs: MemberInputs, offered: dict[str, Interface]) -> dict[str, Interface]:
    """The champion's interface of each producer, from its published manifest (none before the first release)."""
    out: dict[str, Interface] = {}
    if inputs.champion is None:
        return out
    for name, now in offered.items():
        entry = inputs.champion.member(name) or {}
        if "interface" in entry:
            out[name] = offered_interface(name, now.kind, {"interface": entry["interface"]})
    return out
