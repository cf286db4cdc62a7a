"""Shared asset wiring for every stage's ``assets.py``: build (or reuse) an asset's artifact and describe it to Dagster.

Wiring only: the cache is :class:`release_assets.artifacts.LocalArtifactStore`; this turns its result into a
``dg.Output`` with data version and metadata, and gives each asset its code version from its code inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

from release_assets.artifacts import ArtifactRef, LocalArtifactStore, fingerprint
from release_assets.core.hashing import CodeInputs

# The release stages' IO manager, under a key of its own: a team's Dagster project keeps its `io_manager` for its own
# assets (which a release may take as members), and both live in one code location.
IO_MANAGER_KEY = "release_assets_io_manager"


def build_output(
    context: dg.AssetExecutionContext,
    store: LocalArtifactStore,
    *,
    release: str,
    member: str,
    kind: str,
    inputs: dict[str, ArtifactRef],
    builder: Callable[[Path], dict[str, Any]],
    params: Any = None,
    metadata: Callable[[ArtifactRef], dict[str, Any]] | None = None,
) -> dg.Output:
    """Build (or reuse) an asset's artifact, keyed by its code version and its inputs' content digests.

    Nothing here logs to MLflow: metrics travel in the artifact and, once published, the registry sync records them
    there (``release/registry_sync.py``), so a release run never imports MLflow.
    """

    code = context.assets_def.code_versions_by_key.get(context.asset_key) or "unversioned"
    fp = fingerprint(code, {name: ref.digest for name, ref in sorted(inputs.items())}, params)
    keys_by_input = context.assets_def.keys_by_input_name
    upstream = {
        keys_by_input[name].to_user_string(): ref.digest for name, ref in inputs.items() if name in keys_by_input
    }
    ref, reused = store.build(
        release=release, member=member, kind=kind, fingerprint=fp, builder=builder, upstream=upstream
    )
    context.log.info(f"{'reused' if reused else 'built'} {release}/{member} at {ref.location} ({len(ref.files)} files)")
    meta: dict[str, Any] = {
        "reused": reused,
        "fingerprint": fp,
        "path": dg.MetadataValue.path(str(ref.path(store.root))),
        "digest": ref.digest[:16],
        **{k: float(v) for k, v in ref.metrics.items()},
    }
    if metadata:
        meta.update(metadata(ref))
    return dg.Output(ref, data_version=dg.DataVersion(ref.digest[:16]), metadata=meta)


def versioned(inputs: CodeInputs, manifest: Any, member: str | None) -> dict[str, Any]:
    """``code_version`` and metadata for an asset: what it watches (read by the code-change sensor) and which
    release member it belongs to (whose manifest section the sensor compares on manifest edits)."""
    return {
        "code_version": inputs.version(),
        "metadata": {**inputs.metadata(), "release": manifest.name, "member": member or "*"},
        "io_manager_key": IO_MANAGER_KEY,
    }
