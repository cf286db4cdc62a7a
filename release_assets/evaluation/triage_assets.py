"""``<release>/regression_triage``: which member (model, chain, golden suite) moved the chain's metrics in the
latest build, against the champion, as an asset people open from the failed gate.

Outside the release job (group ``<release>_triage``): the failed-gate sensor and ``release-assets release`` run it
when gates hold a build. It reads the latest chain evaluation (a blocking check stops downstream steps only within
its own run) and the members that evaluation was built from, found in the artifact cache by digest; nothing
retrains. The failed chain gate computed the same triage already: this reuses it from the cache.
"""

import json
from typing import Any

import dagster as dg

from release_assets import keys
from release_assets.artifacts import ArtifactRef
from release_assets.assets import versioned
from release_assets.core.hashing import CodeInputs
from release_assets.evaluation.regression_triage import (
    JSON_FILE,
    MARKDOWN_FILE,
    TRIAGE_MODULES,
    headline,
    markdown,
    triage_build,
)
from release_assets.manifest import ReleaseManifest
from release_assets.plots.triage import waterfalls
from release_assets.record.champion import ChampionView


def triage_chain(manifest: ReleaseManifest) -> str | None:
    """The chain member whose golden suite triage re-runs (the first, by name), if the release has one."""
    chains = manifest.members_of("prompt_chain")
    return sorted(chains)[0] if chains else None


def waterfall_metadata(triage: dict[str, Any]) -> dict[str, dg.MetadataValue]:
    """Each moved metric's waterfall (champion's value, each member's share, interaction, this build's), inline as
    ``plot_waterfall_<metric>``; none without matplotlib."""
    return {p.key: dg.MetadataValue.md(p.markdown()) for p in waterfalls(triage)}


def regression_triage_defs(manifest: ReleaseManifest) -> tuple[dg.AssetsDefinition, Any]:
    """The asset and the one-asset job the failed-gate sensor and the CLI launch."""
    chain = triage_chain(manifest)
    assert chain is not None, f"{manifest.name}: triage needs a prompt_chain member"
    release = manifest.name

    @dg.asset(
        key=keys.regression_triage(release),
        ins={"evaluation": dg.AssetIn(keys.chain_evaluation(release, chain))},
        required_resource_keys={"store"},
        group_name=keys.triage_group(release),
        **versioned(CodeInputs(TRIAGE_MODULES), manifest, None),
        description=(
            f"Which member moved `{chain}`'s golden-suite metrics in the latest build, against the champion: the "
            "suite re-run on every mix of this build's and the champion's members (and golden suites), each "
            "metric's change shared between them (Shapley values), with the cases each one flipped."
        ),
        owners=manifest.owners,
        kinds={"python"},
    )
    def regression_triage(context: dg.AssetExecutionContext, evaluation: ArtifactRef) -> dg.MaterializeResult:
        store = context.resources.store
        local, releases = store.local(), store.releases()
        champion = ChampionView(releases, local.root, release).version
        if champion is None:
            return dg.MaterializeResult(metadata={"status": "no champion yet: nothing to compare this build with"})
        code = context.assets_def.code_versions_by_key[context.asset_key]
        ref, reused = triage_build(local, releases, evaluation, champion, code, local.root / "llm_cache")
        context.log.info(headline(ref))
        return dg.MaterializeResult(
            metadata={
                "status": "triaged",
                "champion": champion,
                "reused": reused,
                "headline": headline(ref),
                "triage": dg.MetadataValue.md(markdown(local, ref)),
                "path": dg.MetadataValue.path(str(ref.path(local.root, MARKDOWN_FILE))),
                "blamed": dg.MetadataValue.json(ref.summary["blamed"]),
                "mixed_evaluations": ref.summary["mixes"],
                "seconds": ref.summary["seconds"],
                **waterfall_metadata(json.loads(ref.path(local.root, JSON_FILE).read_text())),
            },
            data_version=dg.DataVersion(ref.digest[:16]),
        )

    job = dg.define_asset_job(
        keys.triage_job(release),
        selection=dg.AssetSelection.assets(regression_triage),
        description=f"Which member moved `{release}`'s chain metrics in the latest build, against the champion.",
    )
    return regression_triage, job
