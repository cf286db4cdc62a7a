"""MLflow as the registry: one run and one model version per published release unit, model versions, aliases.

The ledger is the source of truth for what is published and who is champion. Release runs never touch MLflow;
``release/registry_sync.py`` registers what the ledger published, and :meth:`Registry.mirror` makes MLflow's
aliases (``candidate``, ``champion``, ``canary``) match it, after every sync, promotion and rollback.

A tracking server (an http(s) URI) is checked before any work and every MLflow request after it is bounded
(``release/tracking_server.py``), so an unreachable or hanging server is one line naming it, in seconds, rather than
MLflow's retries for minutes.
"""

import contextlib
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import dagster as dg
from pydantic import PrivateAttr

from release_assets.release.tracking_server import PREFLIGHT_TIMEOUT, bound_requests, check_tracking_server
from release_assets.release.tracking_server import RegistryUnavailable as RegistryUnavailable  # what the CLI catches
from release_assets.resources.mlflow_cleanup import DAGSTER_RUN_TAG, process_tags, sweep_for_run

EXPERIMENT = "release_assets"
RELEASE_VERSION_TAG = "release_version"
BUILT_BY_TAG = "built_by_dagster_run_id"  # the release run that built and published the unit


def _mlflow():
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    return mlflow


def ensure_experiment(tracking_uri: str, artifact_root: str, name: str = EXPERIMENT) -> str:
    """Create the experiment with artifacts under ``artifact_root``: left to MLflow, a sqlite backend would put
    them in ``./mlruns`` of whatever folder the process happens to run in."""
    mlflow = _mlflow()
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    if "://" not in artifact_root:
        Path(artifact_root).mkdir(parents=True, exist_ok=True)
    try:
        return client.create_experiment(name, artifact_location=artifact_root)
    except Exception:  # another process created it between our look-up and create
        return client.get_experiment_by_name(name).experiment_id


class Registry:
    def __init__(
        self, tracking_uri: str, artifact_root: str, ui_url: str | None = None, dagster_run_id: str | None = None
    ) -> None:
        """``dagster_run_id``: the Dagster run doing the registering (a sync or a move), which the stale-run sweep
        asks about; the run that built a release unit is over by then, so its id would mark a live sync stale."""
        self.tracking_uri, self.artifact_root, self.ui_url = tracking_uri, artifact_root, ui_url
        self.dagster_run_id = dagster_run_id
        self.experiment_id = ensure_experiment(tracking_uri, artifact_root)
        self.client = _mlflow().MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def run_link(self, run_id: str) -> str | None:
        """A clickable MLflow UI link, when people have an MLflow UI to click through to."""
        if not self.ui_url:
            return None
        return f"{self.ui_url.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{run_id}"

    def _ensure_model(self, name: str, description: str = "") -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            with contextlib.suppress(MlflowException):  # created concurrently
                self.client.create_registered_model(name, description=description)

    def register(self, name: str, source: str, run_id: str | None, tags: dict[str, str]) -> str:
        """A new model version of ``name`` pointing at ``source`` (a folder or bundle in the artifact store).

        A tracking server cannot read this machine's disk and refuses a local source: the files are then logged to
        the run's artifacts (S3 in the scale-out profile) and the version points at them (``runs:/...``).
        """
        self._ensure_model(name)
        if run_id and self.tracking_uri.startswith(("http://", "https://")) and urlparse(source).scheme in ("", "file"):
            local, artifact_path = Path(urlparse(source).path), f"registered/{name}"
            if local.is_dir():
                self.client.log_artifacts(run_id, str(local), artifact_path)
            else:
                self.client.log_artifact(run_id, str(local), artifact_path)
            source = f"runs:/{run_id}/{artifact_path}"
        version = self.client.create_model_version(name, source=source, run_id=run_id, tags=tags)
        return version.version

    def log_release_unit(
        self,
        release: str,
        manifest: dict[str, Any],
        bundle: Path,
        dagster_run_id: str,
        models: dict[str, Path] | None = None,
    ) -> tuple[str, list[str]]:
        """One MLflow run per release unit: its manifest, member metrics and params, and the bundle, registered as a
        version of ``release``; each of ``models`` (member -> its extracted folder) logged under ``members/<name>`` and
        registered as a version of ``<release>.<member>`` unless one with its digest exists.

        Returns the MLflow run id and the model versions registered (``"<release>.<member> v<n>"``)."""
        client, version = self.client, manifest["version"]
        run = client.create_run(
            self.experiment_id,
            run_name=f"{release} {version}",
            tags={
                **({DAGSTER_RUN_TAG: self.dagster_run_id} if self.dagster_run_id else {}),
                BUILT_BY_TAG: dagster_run_id,
                "release": release,
                RELEASE_VERSION_TAG: version,
                **process_tags(),  # lets a later sweep end it if this process dies before set_terminated
            },
        )
        run_id = run.info.run_id
        metrics = [
            (f"{member}.{k}", float(v))
            for member, m in manifest["members"].items()
            for k, v in m["metrics"].items()
            if isinstance(v, int | float)
        ]
        params = [
            (f"{member}.{k}", json.dumps(v) if not isinstance(v, str) else v)
            for member, m in manifest["members"].items()
            for k, v in (m.get("params") or {}).items()
        ]
        from mlflow.entities import Metric, Param

        stamp = int(run.info.start_time)
        client.log_batch(
            run_id, metrics=[Metric(k, v, stamp, 0) for k, v in metrics], params=[Param(k, v) for k, v in params]
        )
        client.log_dict(run_id, manifest, "manifest.json")
        client.log_artifact(run_id, str(bundle))
        artifact_uri = client.get_run(run_id).info.artifact_uri
        registered = []
        for member, folder in sorted((models or {}).items()):
            name, digest = f"{release}.{member}", manifest["members"][member]["digest"]
            if self._versions_tagged(name, "digest", digest):
                continue
            client.log_artifacts(run_id, str(folder), f"members/{member}")
            tags = {"digest": digest, RELEASE_VERSION_TAG: version, BUILT_BY_TAG: dagster_run_id}
            registered.append(f"{name} v{self.register(name, f'{artifact_uri}/members/{member}', run_id, tags)}")
        client.set_terminated(run_id)
        self._ensure_model(release, description=f"Release units of `{release}`; aliases mirror the ledger.")
        if not self._version_of(release, version):
            self.register(release, f"{artifact_uri}/{bundle.name}", run_id, {RELEASE_VERSION_TAG: version})
        return run_id, registered

    def _versions_tagged(self, name: str, tag: str, value: str) -> list[str]:
        from mlflow.exceptions import MlflowException

        try:
            return [v.version for v in self.client.search_model_versions(f"name='{name}' and tags.{tag}='{value}'")]
        except MlflowException:
            return []  # no registered model yet

    def has_version(self, release: str, release_version: str) -> bool:
        return self._version_of(release, release_version) is not None

    def _version_of(self, release: str, release_version: str) -> str | None:
        found = self._versions_tagged(release, RELEASE_VERSION_TAG, release_version)
        return found[0] if found else None

    def mirror(self, release: str, aliases: dict[str, str | None]) -> None:
        """Point each alias at the model version of the given release version (or remove it when None)."""
        self._ensure_model(release)
        for alias, release_version in aliases.items():
            mv = self._version_of(release, release_version) if release_version else None
            if mv is None:
                with contextlib.suppress(Exception):  # no such alias
                    self.client.delete_registered_model_alias(release, alias)
            else:
                self.client.set_registered_model_alias(release, alias, mv)

    def aliases(self, release: str) -> dict[str, str]:
        """Alias -> release version, as MLflow currently has them."""
        model = self.client.get_registered_model(release)
        out = {}
        for alias, mv in (model.aliases or {}).items():
            out[alias] = self.client.get_model_version(release, mv).tags.get(RELEASE_VERSION_TAG)
        return out


class RegistryResource(dg.ConfigurableResource):
    """MLflow registry and tracking; defaults to sqlite and a folder under the project (no server needed).

    Nothing touches MLflow until :meth:`get` is called: a run that registers nothing does not import it."""

    tracking_uri: str
    artifact_root: str
    ui_url: str | None = None
    # Every request to a tracking server: seconds to connect and to answer, and tries (see bound_requests).
    timeout_s: int = 10
    max_attempts: int = 3
    _init_context: Any = PrivateAttr(default=None)

    def preflight(self) -> None:
        """Raise :class:`RegistryUnavailable` (one line naming the URI) unless the tracking server answers, within
        :data:`PREFLIGHT_TIMEOUT` seconds at most and without retries; sqlite and file URIs need no check."""
        check_tracking_server(self.tracking_uri, min(float(self.timeout_s), PREFLIGHT_TIMEOUT))

    def get(self) -> Registry:
        """The registry, once the tracking server answered (:meth:`preflight`, before anything else touches it)."""
        bound_requests(self.timeout_s, self.max_attempts)
        self.preflight()
        run = getattr(self._init_context, "run", None)
        # Opened before the sweep: a server that stops answering fails here once, not after the sweep waited too.
        registry = Registry(self.tracking_uri, self.artifact_root, self.ui_url, run.run_id if run else None)
        if self._init_context is not None:
            # Runs that only use the registry (promote, rollback) sweep too: any run may be the next after a kill.
            sweep_for_run(self._init_context, self.tracking_uri, lambda: registry.experiment_id)
        return registry

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._init_context = context
