"""Data stage: each dataset member becomes a validated raw asset and a deterministic split asset."""

from pathlib import Path
from typing import Any

import dagster as dg

from release_assets import keys
from release_assets.artifacts import ArtifactRef
from release_assets.assets import build_output, versioned
from release_assets.core.hashing import CodeInputs, files_digest
from release_assets.datasets.table import asset_digest
from release_assets.evaluation.report import markdown_table
from release_assets.manifest import ReleaseManifest, member_kind, member_section
from release_assets.resources.artifact_store import ArtifactStore

SPLIT_MODULES = [
    "release_assets.datasets.build",
    "release_assets.core.textfiles",
    "release_assets.datasets.split",
    "release_assets.promotion.drift",
]


def _raw_asset(manifest: ReleaseManifest, name: str, project_root: Path) -> dg.AssetsDefinition:
    member = manifest.dataset(name)
    declared = member_kind(member.kind)
    runtime = declared.load_runtime()
    source_files = runtime.source_files(member, project_root)
    # A member taken from the team's own Dagster asset (`asset:`): its value arrives through that asset's IO manager,
    # and the asset shows upstream of the release in the UI.
    upstream_asset = getattr(member, "asset", None)
    ins = {"source": dg.AssetIn(key=dg.AssetKey(upstream_asset.split("/")))} if upstream_asset else {}

    @dg.asset(
        key=keys.raw(manifest.name, name),
        ins=ins,
        group_name=keys.group(manifest.name, "data"),
        **versioned(CodeInputs(runtime.modules, source_files, member_section(manifest, name)), manifest, name),
        description=f"{declared.description} Rows failing the schema are listed, not kept.",
        owners=manifest.owners,
        kinds=set(declared.tags),
    )
    def raw_rows(context: dg.AssetExecutionContext, store: ArtifactStore, **source: Any) -> dg.Output:
        value = source.get("source")
        # The value's canonical digest is the build's input, as a file's digest is: the same rows reuse the build.
        read: Any = {"asset": asset_digest(value)} if upstream_asset else files_digest(source_files)
        # An s3:// table as it is now (its ETag): a changed object is read again, an unchanged one reused.
        outside = runtime.source_identity(member, project_root) if runtime.source_identity else None
        if outside is not None:
            read = {"files": read, "source": outside}
        build = (
            (lambda out: runtime.build_raw(member, project_root, out, value=value))
            if upstream_asset
            else (lambda out: runtime.build_raw(member, project_root, out))
        )

        def examples_md(ref: ArtifactRef) -> dict:
            rows = [[e["line"], e["id"], e["field"], e["error"]] for e in ref.summary["examples"]]
            return {"invalid_rows_table": dg.MetadataValue.md(markdown_table(["line", "id", "field", "error"], rows))}

        return build_output(
            context,
            store.local(),
            release=manifest.name,
            member=name,
            kind=member.kind,
            inputs={},
            params=read,
            builder=build,
            metadata=examples_md,
        )

    return raw_rows


def _split_asset(manifest: ReleaseManifest, name: str) -> dg.AssetsDefinition:
    member = manifest.dataset(name)
    runtime = member_kind(member.kind).load_runtime()
    split = member.model_dump(mode="json", by_alias=True).get("split", {})
    strategy = getattr(member, "strategy", "stratified")

    @dg.asset(
        key=keys.split(manifest.name, name),
        ins={"rows": dg.AssetIn(keys.raw(manifest.name, name))},
        group_name=keys.group(manifest.name, "data"),
        **versioned(CodeInputs([*SPLIT_MODULES, *runtime.modules], config=split), manifest, name),
        description=(
            f"Deterministic {strategy} split of `{name}` (test {split.get('test', 0):g}, val {split.get('val', 0):g}, "
            f"seed {split.get('seed', 0)}); rows of one group never straddle a boundary."
        ),
        owners=manifest.owners,
        kinds={"jsonl"},
    )
    def split_rows(context: dg.AssetExecutionContext, store: ArtifactStore, rows: ArtifactRef) -> dg.Output:
        local = store.local()

        def counts(ref: ArtifactRef) -> dict:
            table = [[side, n] for side, n in ref.summary["rows"].items()]
            return {"split_sizes": dg.MetadataValue.md(markdown_table(["split", "rows"], table))}

        return build_output(
            context,
            local,
            release=manifest.name,
            member=f"{name}_split",
            kind="split",
            inputs={"rows": rows},
            builder=lambda out: runtime.build_split(member, rows.path(local.root), out),
            metadata=counts,
        )

    return split_rows


def dataset_assets(manifest: ReleaseManifest, project_root: Path) -> list[dg.AssetsDefinition]:
    out = []
    for name in manifest.members_of_family("dataset"):
        out += [_raw_asset(manifest, name, project_root), _split_asset(manifest, name)]
    return out
