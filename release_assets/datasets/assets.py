"""Data stage: each dataset member becomes a validated raw asset and a deterministic split asset."""

from pathlib import Path

import dagster as dg

from release_assets import keys
from release_assets.artifacts import ArtifactRef
from release_assets.assets import build_output, versioned
from release_assets.core.hashing import CodeInputs, files_digest
from release_assets.datasets import build
from release_assets.evaluation.report import markdown_table
from release_assets.manifest import DATASET_KINDS, JsonlDataset, ReleaseManifest, member_section
from release_assets.resources.artifact_store import ArtifactStore

BUILD_MODULES = [
    "release_assets.datasets.build",
    "release_assets.core.textfiles",
    "release_assets.datasets.schemas",
    "release_assets.datasets.digits",
]
SPLIT_MODULES = [
    "release_assets.datasets.build",
    "release_assets.core.textfiles",
    "release_assets.datasets.split",
    "release_assets.promotion.drift",
]


def _raw_asset(manifest: ReleaseManifest, name: str, project_root: Path) -> dg.AssetsDefinition:
    member = manifest.dataset(name)
    source_files = [project_root / member.path] if isinstance(member, JsonlDataset) else []
    kinds = {"jsonl"} if isinstance(member, JsonlDataset) else {"sklearn"}

    @dg.asset(
        key=keys.raw(manifest.name, name),
        group_name=keys.group(manifest.name, "data"),
        **versioned(CodeInputs(BUILD_MODULES, source_files, member_section(manifest, name)), manifest, name),
        description=f"Rows of `{name}` validated against their schema; failing rows are listed, not kept.",
        owners=manifest.owners,
        kinds=kinds,
    )
    def raw_rows(context: dg.AssetExecutionContext, store: ArtifactStore) -> dg.Output:
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
            params=files_digest(source_files),
            builder=lambda out: build.build_raw(member, project_root, out),
            metadata=examples_md,
        )

    return raw_rows


def _split_asset(manifest: ReleaseManifest, name: str) -> dg.AssetsDefinition:
    member = manifest.dataset(name)

    @dg.asset(
        key=keys.split(manifest.name, name),
        ins={"rows": dg.AssetIn(keys.raw(manifest.name, name))},
        group_name=keys.group(manifest.name, "data"),
        **versioned(CodeInputs(SPLIT_MODULES, config=member.split.model_dump()), manifest, name),
        description=(
            f"Deterministic stratified split of `{name}` (test {member.split.test:g}, val {member.split.val:g}, "
            f"seed {member.split.seed}); rows of one group never straddle a boundary."
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
            builder=lambda out: build.build_split(member, rows.path(local.root), out),
            metadata=counts,
        )

    return split_rows


def dataset_assets(manifest: ReleaseManifest, project_root: Path) -> list[dg.AssetsDefinition]:
    out = []
    for name in manifest.members_of(*DATASET_KINDS):
        out += [_raw_asset(manifest, name, project_root), _split_asset(manifest, name)]
    return out
