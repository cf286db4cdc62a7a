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
from release_assets.release.store import LocalReleaseStore, ReleaseStore, S3ReleaseStore, StoreError

REF_FILE = "_artifact.json"
# Bound on the preflight probe's connect and read waits: long enough for a slow but healthy endpoint, short enough
# that a hanging one is reported before anyone wonders whether the run started.
PREFLIGHT_TIMEOUT = 5.0


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


class StoreUnavailable(dg.Failure):
    """The store failed its preflight; the description is the one-line reason (see :func:`store_unavailable`)."""


def store_unavailable(result: Any) -> str | None:
    """The preflight's one-line reason when ``result`` (an ``execute_in_process`` result) failed on an unusable
    store, else None. Such a run fails while initialising resources, so it has no STEP_FAILURE to read."""
    for event in result.all_events:
        if event.event_type_value != "RESOURCE_INIT_FAILURE":
            continue
        error = getattr(event.event_specific_data, "error", None)
        while error is not None:
            if error.cls_name == StoreUnavailable.__name__:
                return error.message.split(": ", 1)[-1].strip()
            error = error.cause
    return None


class ArtifactStore(dg.ConfigurableResource):
    """Build outputs (always a local folder: they are the working cache steps read from) and published release
    units plus the ledger (the same folder by default, or an S3 bucket through boto3).

    Every run that uses this resource checks the store first (:meth:`setup_for_execution`): an unreachable or
    misconfigured store fails the run in seconds, before training, with one line naming what is wrong.
    """

    root: str = ".release_store"
    backend: str = "local"  # "local" or "s3"
    bucket: str | None = None
    prefix: str = "release_assets"
    endpoint_url: str | None = None  # MinIO, LocalStack, moto: any S3-compatible endpoint
    region_name: str | None = None
    # Bound with dg.EnvVar("AWS_ACCESS_KEY_ID") etc. by definitions.py: secrets never sit in config files.
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    # botocore's defaults (60 s each, retried) let an endpoint that accepts connections but never answers hang a
    # run for minutes; these bound every S3 call. Standard retry mode backs off with jitter on transient errors.
    s3_connect_timeout: float = 5.0
    s3_read_timeout: float = 30.0
    s3_max_attempts: int = 3

    def local(self) -> LocalArtifactStore:
        return LocalArtifactStore(Path(self.root))

    def releases(self) -> ReleaseStore:
        if self.backend == "local":
            return LocalReleaseStore(Path(self.root))
        return S3ReleaseStore(
            self.s3_client(self.s3_connect_timeout, self.s3_read_timeout, self.s3_max_attempts),
            self._bucket(),
            self.prefix,
        )

    def preflight(self) -> None:
        """Raise :class:`StoreError` (one line) unless build outputs and the release store are usable.

        The S3 probe uses its own client, waiting at most :data:`PREFLIGHT_TIMEOUT` seconds to connect or for an
        answer, twice at most: a hanging endpoint is reported in about ten seconds whatever the run's own bounds.
        """
        # Build outputs are local even with an S3 release store: training would fail writing them otherwise.
        LocalReleaseStore(Path(self.root)).preflight()
        if self.backend == "local":
            return
        client = self.s3_client(
            min(self.s3_connect_timeout, PREFLIGHT_TIMEOUT),
            min(self.s3_read_timeout, PREFLIGHT_TIMEOUT),
            min(self.s3_max_attempts, 2),
        )
        S3ReleaseStore(client, self._bucket(), self.prefix).preflight()

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Dagster calls this once per run (in-process executor) before any step that uses the store runs.
        try:
            self.preflight()
        except StoreError as exc:
            if context.log is not None:  # the one line, ahead of the traceback Dagster logs for the failed run
                context.log.error(str(exc))
            raise StoreUnavailable(description=str(exc), allow_retries=False) from None

    def _bucket(self) -> str:
        if self.backend != "s3":
            raise ValueError(f"store backend {self.backend!r}: expected 'local' or 's3'")
        if not self.bucket:
            raise ValueError("the s3 store backend needs a `bucket` (RELEASE_ASSETS_S3_BUCKET)")
        return self.bucket

    def s3_client(self, connect_timeout: float, read_timeout: float, max_attempts: int) -> Any:
        """A boto3 S3 client with these bounds and this resource's endpoint, region and credentials.

        Built here rather than by dagster-aws' ``S3Resource``, which takes ``max_attempts`` but no timeouts. With
        no keys configured boto3 falls back to its usual chain (environment, profile, instance role), as before.
        boto3 is imported here so loading definitions stays free of it.
        """
        import boto3
        from botocore.config import Config

        def resolved(value):  # inside a run Dagster resolves EnvVars; the CLI reads the store outside of one
            return value.get_value() if isinstance(value, dg.EnvVar) else value

        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region_name,
            aws_access_key_id=resolved(self.aws_access_key_id),
            aws_secret_access_key=resolved(self.aws_secret_access_key),
            config=config,
        )


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
