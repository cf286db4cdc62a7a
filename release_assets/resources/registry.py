"""MLflow as registry and tracker: runs per Dagster run, model versions, release units, and aliases.

The ledger is the source of truth for who is champion; :meth:`Registry.mirror` makes MLflow's aliases
(``candidate``, ``champion``) match it after every publish, promotion and rollback.
"""

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import dagster as dg
from pydantic import PrivateAttr

from release_assets.resources.mlflow_cleanup import process_tags, sweep_for_run

EXPERIMENT = "release_assets"
RELEASE_VERSION_TAG = "release_version"


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
    def __init__(self, tracking_uri: str, artifact_root: str, ui_url: str | None = None) -> None:
        self.tracking_uri, self.artifact_root, self.ui_url = tracking_uri, artifact_root, ui_url
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

    def log_release_unit(self, release: str, manifest: dict[str, Any], bundle: Path, dagster_run_id: str) -> str:
        """One MLflow run per release unit: its manifest, member metrics and the bundle; registered as a version."""
        client, version = self.client, manifest["version"]
        run = client.create_run(
            self.experiment_id,
            run_name=f"{release} {version}",
            tags={
                "dagster_run_id": dagster_run_id,
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
        from mlflow.entities import Metric

        stamp = int(run.info.start_time)
        client.log_batch(run_id, metrics=[Metric(k, v, stamp, 0) for k, v in metrics])
        client.log_dict(run_id, manifest, "manifest.json")
        client.log_artifact(run_id, str(bundle))
        client.set_terminated(run_id)
        source = f"{client.get_run(run_id).info.artifact_uri}/{bundle.name}"
        self._ensure_model(release, description=f"Release units of `{release}`; aliases mirror the ledger.")
        if not self._version_of(release, version):
            self.register(release, source, run_id, {RELEASE_VERSION_TAG: version})
        return run_id

    def release_run(self, release: str, release_version: str) -> str | None:
        """The MLflow run that logged this release version, if it was logged already."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.release = '{release}' and tags.{RELEASE_VERSION_TAG} = '{release_version}'",
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def has_version(self, release: str, release_version: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            return self._version_of(release, release_version) is not None
        except MlflowException:
            return False  # no registered model yet

    def _version_of(self, release: str, release_version: str) -> str | None:
        found = self.client.search_model_versions(
            f"name='{release}' and tags.{RELEASE_VERSION_TAG}='{release_version}'"
        )
        return found[0].version if found else None

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
    _init_context: Any = PrivateAttr(default=None)

    def get(self) -> Registry:
        if self._init_context is not None:
            # Runs that only use the registry (promote, rollback) sweep too: any run may be the next after a kill.
            sweep_for_run(
                self._init_context, self.tracking_uri, lambda: ensure_experiment(self.tracking_uri, self.artifact_root)
            )
        return Registry(self.tracking_uri, self.artifact_root, self.ui_url)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._init_context = context


class LazyTracking:
    """dagster-mlflow's tracker, started on first use: importing MLflow and opening its run cost seconds, and a run
    whose every artifact is reused logs nothing."""

    def __init__(self, start: Callable[[], Any]) -> None:
        self._start, self._tracker = start, None

    @property
    def started(self) -> bool:
        return self._tracker is not None

    def __getattr__(self, name: str) -> Any:
        if self._tracker is None:
            self._tracker = self._start()
        return getattr(self._tracker, name)


@dg.resource(
    config_schema={
        "experiment_name": dg.Field(str, default_value=EXPERIMENT),
        "mlflow_tracking_uri": str,
        "artifact_root": str,
    },
    description="dagster-mlflow tracking: one MLflow run per Dagster run, tagged with its dagster_run_id.",
)
def mlflow_tracking(init_context: dg.InitResourceContext):
    """dagster-mlflow's ``MlFlow``, preceded by creating the experiment where its artifacts belong.

    dagster-mlflow imports mlflow at module level; importing it here keeps definitions free of mlflow. Started
    lazily (:class:`LazyTracking`): the first asset that logs something opens the MLflow run.
    """

    def start() -> Any:
        from dagster_mlflow.resources import MlFlow

        config = init_context.resource_config
        _close_foreign_run(init_context.run.run_id)
        experiment_id = ensure_experiment(
            config["mlflow_tracking_uri"], config["artifact_root"], config["experiment_name"]
        )
        # After _close_foreign_run, which ends this process's previous run properly; the sweep is for the rest.
        sweep_for_run(init_context, config["mlflow_tracking_uri"], lambda: experiment_id)
        tracker = MlFlow(init_context)
        _mlflow().set_tags(process_tags())  # on the run MlFlow just started or adopted
        _ACTIVE_OWNER.update(dagster_run_id=init_context.run.run_id, tracking_uri=config["mlflow_tracking_uri"])
        return tracker

    return LazyTracking(start)


# Which Dagster run (and tracking server) the process's active MLflow run belongs to. dagster-mlflow adopts any
# active run it finds; in a process that executes several Dagster runs (the CLI, tests) that would be the previous
# run's, possibly on another tracking server. Such a run is ended before a new Dagster run starts its own.
_ACTIVE_OWNER: dict[str, str] = {}


def _close_foreign_run(dagster_run_id: str) -> None:
    mlflow = _mlflow()
    if mlflow.active_run() is None or _ACTIVE_OWNER.get("dagster_run_id") == dagster_run_id:
        return
    previous_uri = mlflow.get_tracking_uri()
    try:
        if _ACTIVE_OWNER.get("tracking_uri"):
            mlflow.set_tracking_uri(_ACTIVE_OWNER["tracking_uri"])
        mlflow.end_run()
    except Exception:
        from mlflow.tracking.fluent import _active_run_stack

        _active_run_stack.get().clear()  # its server is gone: forget the run rather than fail this one
    finally:
        mlflow.set_tracking_uri(previous_uri)
        _ACTIVE_OWNER.clear()
