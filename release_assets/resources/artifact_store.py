"""The artifact store: content-addressed build outputs, and the release store for published units.

Every write goes to a private temporary folder first and becomes visible with one ``rename``, so a reader (or a
crashed run) sees a whole artifact or none, and a rebuild of the same fingerprint reuses what is there.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

from release_assets.artifacts import ArtifactRef, FileEntry
from release_assets.hashing import CodeInputs, sha256_file
from release_assets.release.store import LocalReleaseStore, ReleaseStore, S3ReleaseStore

REF_FILE = "_artifact.json"


class LocalArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    # -- build outputs ---------------------------------------------------------------------------------------
    def _artifact_dir(self, release: str, member: str, fingerprint: str) -> Path:
        return self.root / "artifacts" / release / member / fingerprint

    def cached(self, release: str, member: str, fingerprint: str) -> ArtifactRef | None:
        ref_path = self._artifact_dir(release, member, fingerprint) / REF_FILE
        if not ref_path.exists():
            return None
        return ArtifactRef.model_validate_json(ref_path.read_text())

    def build(
        self,
        *,
        release: str,
        member: str,
        kind: str,
        fingerprint: str,
        builder: Callable[[Path], dict[str, Any]],
        upstream: dict[str, str] | None = None,
    ) -> tuple[ArtifactRef, bool]:
        """Return the artifact for ``fingerprint``, building it only if the store lacks it.

        ``builder`` writes files into the folder it is given and returns the summary. The second value tells
        whether the artifact was reused.
        """
        existing = self.cached(release, member, fingerprint)
        if existing is not None:
            return existing, True
        final = self._artifact_dir(release, member, fingerprint)
        work = self._scratch()
        try:
            summary = builder(work)
            files = {
                p.relative_to(work).as_posix(): FileEntry(sha256=sha256_file(p), size=p.stat().st_size)
                for p in sorted(work.rglob("*"))
                if p.is_file()
            }
            ref = ArtifactRef(
                release=release,
                member=member,
                kind=kind,
                fingerprint=fingerprint,
                location=final.relative_to(self.root).as_posix(),
                files=files,
                summary=summary,
                upstream=upstream or {},
            )
            (work / REF_FILE).write_text(ref.model_dump_json(indent=2))
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                work.rename(final)
            except OSError:
                # Another run built the same fingerprint first; its content is identical by construction.
                if not (final / REF_FILE).exists():
                    raise
                return ArtifactRef.model_validate_json((final / REF_FILE).read_text()), True
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return ref, False

    def _scratch(self) -> Path:
        tmp = self.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=tmp))


class ArtifactStore(dg.ConfigurableResource):
    """Build outputs (always a local folder: they are the working cache steps read from) and published release
    units plus the ledger (the same folder by default, or an S3 bucket through dagster-aws' ``S3Resource``)."""

    root: str = ".release_store"
    backend: str = "local"  # "local" or "s3"
    bucket: str | None = None
    prefix: str = "release_assets"
    endpoint_url: str | None = None  # MinIO, LocalStack, moto: any S3-compatible endpoint
    region_name: str | None = None
    # Bound with dg.EnvVar("AWS_ACCESS_KEY_ID") etc. by definitions.py: secrets never sit in config files.
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None

    def local(self) -> LocalArtifactStore:
        return LocalArtifactStore(Path(self.root))

    def releases(self) -> ReleaseStore:
        if self.backend == "local":
            return LocalReleaseStore(Path(self.root))
        if self.backend != "s3":
            raise ValueError(f"store backend {self.backend!r}: expected 'local' or 's3'")
        if not self.bucket:
            raise ValueError("the s3 store backend needs a `bucket` (RELEASE_ASSETS_S3_BUCKET)")
        # dagster-aws builds the boto3 client; imported here so loading definitions stays free of boto3.
        from dagster_aws.s3 import S3Resource

        def resolved(value):  # inside a run Dagster resolves EnvVars; the CLI reads the store outside of one
            return value.get_value() if isinstance(value, dg.EnvVar) else value

        s3 = S3Resource(
            endpoint_url=self.endpoint_url,
            region_name=self.region_name,
            aws_access_key_id=resolved(self.aws_access_key_id),
            aws_secret_access_key=resolved(self.aws_secret_access_key),
        )
        return S3ReleaseStore(s3.get_client(), self.bucket, self.prefix)


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
    tracking: Any = None,
    on_built: Callable[[ArtifactRef], dict[str, Any]] | None = None,
) -> dg.Output:
    """Build (or reuse) an asset's artifact, keyed by its code version and its inputs' content digests.

    With ``tracking`` (the dagster-mlflow resource) the artifact's metrics are logged to this Dagster run's MLflow
    run; ``on_built`` runs only when something was actually built (e.g. registering a newly trained model).
    """
    from release_assets.artifacts import fingerprint

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
    if tracking is not None:
        numeric = {f"{release}.{member}.{k}": float(v) for k, v in ref.metrics.items() if isinstance(v, int | float)}
        if numeric:
            tracking.log_metrics(numeric)
        meta["mlflow_run_id"] = tracking.active_run().info.run_id
    if on_built is not None and not reused:
        meta.update(on_built(ref))
    return dg.Output(ref, data_version=dg.DataVersion(ref.digest[:16]), metadata=meta)


def versioned(inputs: CodeInputs, manifest: Any, member: str | None) -> dict[str, Any]:
    """``code_version`` and metadata for an asset: what it watches (read by the code-change sensor) and which
    release member it belongs to (whose manifest section the sensor compares on manifest edits)."""
    return {
        "code_version": inputs.version(),
        "metadata": {**inputs.metadata(), "release": manifest.name, "member": member or "*"},
    }
