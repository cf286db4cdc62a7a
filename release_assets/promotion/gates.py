"""Every gate of a member, decided from what its assets produced: one function for checks and release unit.

Which gates exist, what each reads and how it decides is declared once, in
:mod:`release_assets.promotion.gate_table`. Plain metric gates compare a number from the member's summary with the
manifest threshold; the others call their decide function (:mod:`release_assets.promotion.catalogue`). Both the
blocking check and the release unit call :func:`member_verdicts`, so the release unit decides again with the same
code rather than trusting a check that may not have run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from release_assets import keys
from release_assets.artifacts import ArtifactRef
from release_assets.manifest import ReleaseManifest, family
from release_assets.promotion.explain import latency_context
from release_assets.promotion.gate_table import gate_spec
from release_assets.promotion.inputs import MemberInputs
from release_assets.promotion.policy import Verdict, threshold_verdict

__all__ = [
    "MemberInputs",
    "consistency_verdicts",
    "gate_role",
    "member_roles",
    "member_verdicts",
    "producer_role",
    "producer_roles",
]


def gate_role(kind: str, gate: str, spec_of: Any = None) -> str:
    """Which of a member's assets a gate reads, and so which asset its check is attached to (``spec_of``: the
    member's manifest entry, which a gate on a metric of its own ``metrics:`` function needs)."""
    return gate_spec(kind, gate, spec_of).role(kind)


def _decided(member: str, gate: str, decide: Callable[..., Verdict], t, inputs: MemberInputs) -> Verdict:
    try:
        verdict = decide(member, inputs, t)
        return replace(verdict, gate=gate, severity=t.severity, on_inconclusive=t.on_inconclusive)
    except Exception as exc:
        # Only "there is no champion yet" may pass with a warning; an input that cannot be read is a reason to
        # hold, whatever `on_inconclusive` says.
        reason = f"cannot evaluate {gate} for {member}: {type(exc).__name__}: {exc}"
        return Verdict(member, gate, "failed", reason, None, {"min": t.min, "max": t.max}, t.severity)


def _measured(manifest: ReleaseManifest, member: str, gate: str, t, inputs: MemberInputs) -> Verdict:
    config = manifest.members[member]
    spec = gate_spec(config.kind, gate, config)
    summary = inputs.refs[spec.role(config.kind)].summary
    metrics = summary.get("metrics", {})
    verdict = threshold_verdict(member, gate, metrics.get(gate), t)
    if spec.user_metric and verdict.observed is None:
        # The member's own function did not return it (or returned None or NaN): a name the manifest gates but
        # the code never computes is a mistake to fix, not a case for `on_inconclusive`.
        returned = sorted(set(summary.get("user_metrics", [])))
        reason = (
            f"{gate} was not measured: {getattr(config, 'metrics', None)} returned no value for it "
            f"(it returned: {', '.join(returned) or 'nothing'})"
        )
        verdict = replace(verdict, status="failed", reason=reason)
    # How it was measured matters when the gate fails or the machine was busy; a quiet pass stays short.
    busy = (metrics.get("cpu_wait_share") or 0) >= 0.1
    if gate.endswith("_ms") and verdict.observed is not None and (busy or verdict.status != "passed"):
        verdict = replace(verdict, reason=verdict.reason + latency_context(metrics))
    if verdict.status != "passed":
        verdict = replace(verdict, examples=summary.get("examples", []))
    explain = spec.explain
    if verdict.status == "failed" and explain is not None:
        verdict = explain(manifest.members[member], verdict, summary)
    return verdict


def member_verdicts(manifest: ReleaseManifest, member: str, inputs: MemberInputs) -> list[Verdict]:
    out = []
    inputs = replace(inputs, config=manifest.members[member])
    for gate, t in sorted(manifest.gates.get(member, {}).items()):
        decide = gate_spec(manifest.members[member].kind, gate, manifest.members[member]).decide
        out.append(
            _measured(manifest, member, gate, t, inputs)
            if decide is None
            else _decided(member, gate, decide, t, inputs)
        )
    return out


def member_roles(manifest: ReleaseManifest, member: str) -> dict[str, list[str]]:
    """Role -> asset key of every asset a member's gates read."""

    kind, name = manifest.members[member].kind, manifest.name
    if family(kind) == "dataset":
        return {"raw": keys.raw(name, member), "split": keys.split(name, member)}
    if family(kind) == "model":
        data = manifest.model(member).data
        roles = {"model": keys.model(name, member)}
        if data is not None:  # a model built from a dataset is evaluated on its test split
            roles |= {"report": keys.report(name, member), "split": keys.split(name, data)}
    else:
        roles = {"chain": keys.chain(name, member), "evaluation": keys.chain_evaluation(name, member)}
        if keys.traffic_chain(manifest) == member:
            roles["shadow"] = keys.shadow_comparison(name)  # recorded traffic, candidate against champion
    return roles | producer_roles(manifest, member)


def producer_roles(manifest: ReleaseManifest, member: str) -> dict[str, list[str]]:
    """The built asset of each member ``member`` is built from, whose interface its contract gate reads: a
    dataset's raw rows (labels, columns), a model, a chain. Role names are identifiers (a check's inputs)."""
    built = {"dataset": keys.raw, "model": keys.model, "chain": keys.chain}
    upstream = manifest.members[member].upstream
    return {producer_role(p): built[family(manifest.members[p].kind)](manifest.name, p) for p in upstream}


def producer_role(member: str) -> str:
    return f"producer__{member}"


def consistency_verdicts(refs_by_key: dict[str, ArtifactRef]) -> list[Verdict]:
    """Every bundled artifact must have been built from the very upstream artifacts bundled with it.

    Each asset keeps only its latest materialization, so after a partial run (a model retrained, its report not)
    or two overlapping runs, the latest report may describe another model than the latest model. Gates read from
    such a report would judge the wrong model; the release is held until the stale asset is rematerialized.
    """
    out = []
    for key, ref in sorted(refs_by_key.items()):
        for upstream, digest in sorted(ref.upstream.items()):
            current = refs_by_key.get(upstream)
            if current is not None and current.digest != digest:
                reason = (
                    f"{key} was built from {upstream} {digest[:12]}, but the release would bundle {upstream} "
                    f"{current.digest[:12]}: rematerialize {key}"
                )
                out.append(Verdict(ref.member, "consistency", "failed", reason, None, {}))
    return out
