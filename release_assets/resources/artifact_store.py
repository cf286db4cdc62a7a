"""The Dagster resource over the stores: the local build cache, and the release store (local folder or S3)
selected by configuration, checked before any work (preflight)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from release_assets.artifacts import LocalArtifactStore
from release_assets.core.s3_client import bounded_client
from release_assets.release.s3_store import S3ReleaseStore
from release_assets.release.store import LocalReleaseStore, ReleaseStore, StoreError

# Bound on the preflight probe's connect and read waits: long enough for a slow but healthy endpoint, short enough
# that a hanging one is reported before anyone wonders whether the run started.
PREFLIGHT_TIMEOUT = 5.0


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
    # Bound with dg.EnvVar("AWS_ACCESS_KEY_ID") etc. by component/wiring.resources_for: secrets never sit in config
    # files.
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

        def resolved(value):  # inside a run Dagster resolves EnvVars; the CLI reads the store outside of one
            return value.get_value() if isinstance(value, dg.EnvVar) else value

        return bounded_client(
            endpoint_url=self.endpoint_url,
            region_name=self.region_name,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_attempts=max_attempts,
            aws_access_key_id=resolved(self.aws_access_key_id),
            aws_secret_access_key=resolved(self.aws_secret_access_key),
        )
