"""Promotion gates as blocking asset checks, one check per gate the manifest declares.

Each check reads the summary its target asset produced and asks :mod:`release_assets.promotion.policy` for a
verdict; a failing check's metadata shows the threshold, the observed value and the worst examples.
"""

from collections.abc import Iterator

import dagster as dg

from release_assets import keys
from release_assets.artifacts import ArtifactRef
from release_assets.evaluation.report import examples_markdown
from release_assets.manifest import ReleaseManifest
from release_assets.promotion.policy import Verdict, member_verdicts


def check_name(gate: str) -> str:
    return f"{gate}_gate"


def check_result(verdict: Verdict) -> dg.AssetCheckResult:
    meta: dict = {
        "status": verdict.status,
        "reason": verdict.reason,
        "threshold": dg.MetadataValue.json({k: v for k, v in verdict.threshold.items() if v is not None}),
        "severity": verdict.severity,
    }
    if verdict.observed is not None:
        meta["observed"] = float(verdict.observed)
    if verdict.champion is not None:
        meta["champion"] = float(verdict.champion)
    if verdict.examples and verdict.status != "passed":
        columns = [c for c in verdict.examples[0] if not c.startswith("_")]
        meta["worst_examples"] = dg.MetadataValue.md(examples_markdown(verdict.examples, columns))
    return dg.AssetCheckResult(
        passed=verdict.status == "passed",
        check_name=check_name(verdict.gate),
        metadata=meta,
        description=verdict.reason,
        severity=dg.AssetCheckSeverity.ERROR if verdict.severity == "block" else dg.AssetCheckSeverity.WARN,
    )


def _member_checks(manifest: ReleaseManifest, member: str) -> dg.AssetChecksDefinition:
    target = dg.AssetKey(keys.gate_target(manifest, member))
    gates = manifest.gates[member]
    specs = [
        dg.AssetCheckSpec(
            check_name(gate),
            asset=target,
            blocking=t.severity == "block",
            description=f"`{member}`: {gate} must be "
            + " and ".join(f"{op} {v:g}" for op, v in (("at least", t.min), ("at most", t.max)) if v is not None),
        )
        for gate, t in sorted(gates.items())
    ]

    @dg.multi_asset_check(
        name=f"{manifest.name}__{member}_gates",
        specs=specs,
        ins={"ref": dg.AssetIn(target)},
        description=f"Promotion gates of `{manifest.name}/{member}` from `releases/{manifest.name}.yaml`.",
    )
    def gates_check(ref: ArtifactRef) -> Iterator[dg.AssetCheckResult]:
        for verdict in member_verdicts(manifest, member, ref.summary, with_examples=True):
            yield check_result(verdict)

    return gates_check


def gate_checks(manifest: ReleaseManifest) -> list[dg.AssetChecksDefinition]:
    return [_member_checks(manifest, member) for member in sorted(manifest.gates)]
