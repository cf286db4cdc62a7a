"""The ``<release>/shadow_report`` asset: live shadow pairs collected by ``serve``, judged by the shadow gates.

``serve`` keeps every shadow pair where the release store is: ``<store>/shadow/<release>/<version>.jsonl`` beside
a local store, segments per replica beside an S3 store's releases (serving/shadow_store.py), so the pairs of every
replica are judged together. This asset summarizes the pairs of one shadowed version against the champion with the
same code as the offline ``shadow_comparison`` (evaluation/shadow_pairs.py), decides the same gates from the
manifest (promotion/shadow_gates.py), shows them as checks, and records a ``shadow_reported`` ledger event: the
evidence a canary start can require (``rollout.require_shadow``).

Outside the release job (group ``<release>_rollout``) and with no upstream asset: it reads live files, so neither
a release run nor the code-change sensor (which runs what is downstream of a change) should ever pick it up.
"""

from typing import Any

import dagster as dg

from release_assets import keys
from release_assets.core.hashing import CodeInputs
from release_assets.evaluation.report import examples_markdown, markdown_table
from release_assets.evaluation.shadow_pairs import summarize
from release_assets.manifest import ReleaseManifest, Threshold
from release_assets.plots.gates import gate_bars
from release_assets.promotion.checks import check_name, check_result
from release_assets.promotion.gate_table import GATES
from release_assets.promotion.policy import Verdict, bounds_text
from release_assets.promotion.shadow_gates import shadow_verdict
from release_assets.record.ledger import record_shadow_report, replay
from release_assets.release.store import StoreError
from release_assets.serving.flag_source import FlagSourceUnavailable
from release_assets.serving.shadow_store import store_shadow_pairs

MODULES = [
    "release_assets.rollout.shadow_assets",
    "release_assets.evaluation.shadow_pairs",
    "release_assets.promotion.shadow_gates",
    "release_assets.serving.shadow_log",
    "release_assets.serving.shadow_store",
]


class ShadowReportConfig(dg.Config):
    version: str | None = None  # the shadowed version; default: the one the release's flag file shadows now


def shadow_gates(manifest: ReleaseManifest) -> tuple[str | None, dict[str, Threshold]]:
    """The member carrying the shadow gates (the chain serving answers with) and those gates."""
    member = keys.traffic_chain(manifest)
    gates = manifest.gates.get(member, {}) if member else {}
    return member, {g: t for g, t in sorted(gates.items()) if g in GATES and GATES[g].reads == "shadow"}


def judge(
    manifest: ReleaseManifest, pairs: list[dict[str, Any]], champion: str | None
) -> tuple[dict[str, Any], list[Verdict], bool]:
    """Summary (of the pairs whose primary was ``champion``), every shadow gate's verdict, and whether the report
    passed: every gate decided and passed (a failed ``warn`` gate only reports). Too few pairs, no champion or no
    shadow gate at all is never a pass."""

    against = [p for p in pairs if champion is not None and p.get("primary_version") == champion]
    summary = {**summarize(against), "champion": champion, "other_primary": len(pairs) - len(against)}
    member, gates = shadow_gates(manifest)
    verdicts = [shadow_verdict(member, gate, summary, t) for gate, t in gates.items()] if member else []
    passed = bool(verdicts) and all(
        v.status == "passed" or (v.status == "failed" and v.severity == "warn") for v in verdicts
    )
    return summary, verdicts, passed


def _verdict_rows(verdicts: list[Verdict]) -> str:
    rows = [
        [v.gate, v.status, "" if v.observed is None else v.observed, bounds_text(v.threshold), v.reason]
        for v in verdicts
    ]
    return markdown_table(["gate", "status", "observed", "threshold", "reason"], rows)


def verdicts_plot(verdicts: list[Verdict], title: str) -> dict[str, dg.MetadataValue]:
    """The shadow gates' observed values against their bounds, inline as ``plot_shadow_gates`` (none without
    matplotlib or with nothing observed)."""
    rows = [
        {
            "gate": v.gate,
            "observed": v.observed,
            "min": v.threshold.get("min"),
            "max": v.threshold.get("max"),
            "status": v.status,
        }
        for v in verdicts
    ]
    drawn = gate_bars(rows, title, name="shadow_gates")
    return {drawn.key: dg.MetadataValue.md(drawn.markdown())} if drawn else {}


def shadow_report_asset(manifest: ReleaseManifest) -> dg.AssetsDefinition:
    key = dg.AssetKey(keys.shadow_report(manifest.name))
    member, gates = shadow_gates(manifest)
    specs = [
        dg.AssetCheckSpec(
            check_name(gate),
            asset=key,
            blocking=False,
            description=f"`{member}` live shadow: {gate} {bounds_text({'min': t.min, 'max': t.max})}",
        )
        for gate, t in gates.items()
    ]

    @dg.asset(
        key=key,
        group_name=keys.rollout_group(manifest.name),
        check_specs=specs,
        required_resource_keys={"store"},
        code_version=CodeInputs(MODULES).version(),
        description=(
            f"Live shadow pairs of a `{manifest.name}` version (what `serve` compared with the champion on sampled "
            f"traffic), judged by the shadow gates of `releases/{manifest.name}.yaml`; records a `shadow_reported` "
            "ledger event. Config `version` (default: the version the flag file shadows now)."
        ),
        owners=manifest.owners,
        kinds={"python"},
    )
    def shadow_report(context: dg.AssetExecutionContext, config: ShadowReportConfig) -> dg.MaterializeResult:
        from release_assets.serving.flag_reads import store_shadow_version
        from release_assets.serving.flags import FlagError

        store = context.resources.store
        releases, root = store.releases(), store.local().root / "shadow"
        version = config.version
        if version is None:
            # The flag document where the store keeps it (a local file, or the S3 store's object), the one every
            # serve replica routes by; one serve would refuse is refused here too, naming it and the field.
            try:
                version = store_shadow_version(releases, manifest.name)
            except (FlagError, FlagSourceUnavailable, StoreError) as exc:
                raise dg.Failure(f"{manifest.name}: {exc}") from None
            if version is None:
                raise dg.Failure(
                    f"{manifest.name}: no shadow version: set config `version`, or shadow one first "
                    f"(`release-assets flags {manifest.name} --shadow VERSION ...`)"
                )
        kept = store_shadow_pairs(releases, root)  # every replica's pairs, from the store they share
        try:
            pairs = kept.read(manifest.name, version)
        except (StoreError, ValueError) as exc:
            raise dg.Failure(f"{manifest.name}: {exc}") from None
        champion = replay(releases.events(manifest.name)).champion
        summary, verdicts, passed = judge(manifest, pairs, champion)
        metrics = {k: v for k, v in summary["metrics"].items() if v is not None}
        record_shadow_report(
            releases,
            manifest.name,
            version,
            passed,
            summary["metrics"]["pairs"],
            metrics,
            [v.as_dict() for v in verdicts],
        )
        columns = [c for c in (summary["examples"] or [{"id": ""}])[0] if not c.startswith("_")]
        context.log.info(
            f"{manifest.name} {version}: {len(pairs)} live pairs, shadow report {'passed' if passed else 'not passed'}"
        )
        return dg.MaterializeResult(
            metadata={
                "version": version,
                "champion": champion or "none",
                "passed": passed,
                "pairs_logged": len(pairs),
                "pairs_other_primary": summary["other_primary"],  # answered by a canary or an earlier champion
                **{k: float(v) for k, v in metrics.items()},
                "disagreeing_pairs": dg.MetadataValue.md(examples_markdown(summary["examples"], columns)),
                "verdicts": dg.MetadataValue.md(_verdict_rows(verdicts)),
                **verdicts_plot(verdicts, f"{manifest.name} {version}: live shadow against champion {champion}"),
                "pairs_file": dg.MetadataValue.path(kept.where(manifest.name, version)),
            },
            check_results=[check_result(v, key) for v in verdicts],
        )

    return shadow_report
