"""MLflow as the registry: one run and one model version per published release unit, model versions, aliases.

The ledger is the source of truth for what is published and who is champion. Release runs never touch MLflow;
``release/registry_sync.py`` registers what the ledger published, and :meth:`Registry.mirror` makes MLflow's
aliases (``candidate``, ``champion``, ``canary``) match it, after every sync, promotion and rollback: on the
release's model, on the model versions of its members and on the prompt versions of its chain templates.

Every version this registers loads as a pyfunc (``rollout/mlflow_models.py``): ``<release>`` answers requests as
``serve`` does, from its verified bundle; ``<release>.<member>`` is the member's model with a signature and an input
example. Prompt versions are registered by ``rollout/prompt_registry.py``.

A tracking server (an http(s) URI) is checked before any work and every MLflow request after it is bounded
(``release/tracking_server.py``), so an unreachable or hanging server is one line naming it, in seconds, rather than
MLflow's retries for minutes.
"""

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import dagster as dg
from pydantic import PrivateAttr

from release_assets.release.bundle import extract_bundle
from release_assets.release.registry_sync import UnitFiles
from release_assets.release.report_html import REPORT_PATH
from release_assets.release.tracking_server import PREFLIGHT_TIMEOUT, bound_requests, check_tracking_server
from release_assets.release.tracking_server import RegistryUnavailable as RegistryUnavailable  # what the CLI catches
from release_assets.resources.mlflow_cleanup import DAGSTER_RUN_TAG, process_tags, sweep_for_run
from release_assets.rollout.mlflow_models import (
    MemberExample,
    member_example,
    release_example,
    save_member_model,
    save_release_model,
    serves,
)
from release_assets.rollout.prompt_registry import chain_templates, mirror_prompt_aliases, register_templates

EXPERIMENT = "release_assets"
RELEASE_VERSION_TAG = "release_version"
BUILT_BY_TAG = "built_by_dagster_run_id"  # the release run that built and published the unit
PYFUNC_TAG = "pyfunc"  # "true" on a version that loads as a pyfunc (those registered before were raw folders)
# On a release's model version: what it shipped, so its aliases can be mirrored onto its members and prompts.
MEMBERS_TAG = "member_model_versions"  # JSON: "<release>.<member>" -> model version
PROMPTS_TAG = "prompt_versions"  # JSON: prompt name -> prompt version


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
        files: UnitFiles | None = None,
    ) -> tuple[str, list[str], list[str]]:
        """One MLflow run per release unit: its manifest, member metrics and params, its release report
        (``report.html``, when the bundle carries one), and the release as a pyfunc
        over the verified ``bundle`` (``release/``), registered as a version of ``release``. Each of ``models``
        (member -> its extracted folder) is saved as a pyfunc under ``members/<name>`` and registered as a version
        of ``<release>.<member>`` unless a pyfunc with its digest exists; each chain template is a prompt version
        unless one with its sha256 exists. ``files``: the bundle extracted, and the files it holds by reference
        (input examples are read from them); without it the bundle is extracted here and examples come from what
        it carries. A release `serve` could not answer for (no chain, not exactly one model) is registered as its
        bundle file, as before pyfuncs.

        Returns the MLflow run id, the model versions registered (``"<release>.<member> v<n>"``) and the prompt
        versions registered (``"<prompt> v<n>"``)."""
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
        try:
            source, tags, registered, prompts = self._log_models(
                run_id, release, manifest, bundle, dagster_run_id, models, files
            )
        except BaseException:
            with contextlib.suppress(Exception):  # the original error is the one to report
                client.set_terminated(run_id, "FAILED")  # the next sync registers this version again
            raise
        client.set_terminated(run_id)
        self._ensure_model(release, description=f"Release units of `{release}`; aliases mirror the ledger.")
        if not self._version_of(release, version):
            self.register(release, source, run_id, {RELEASE_VERSION_TAG: version, **tags})
        return run_id, registered, prompts

    def _log_models(
        self,
        run_id: str,
        release: str,
        manifest: dict[str, Any],
        bundle: Path,
        dagster_run_id: str,
        models: dict[str, Path] | None,
        files: UnitFiles | None,
    ) -> tuple[str, dict[str, str], list[str], list[str]]:
        """Log the members' pyfuncs (registering those whose digest has none), the chain templates' prompt
        versions and the release's pyfunc to the run; returns the release version's source and tags, and the model
        and prompt versions newly registered."""
        client, version = self.client, manifest["version"]
        artifact_uri = client.get_run(run_id).info.artifact_uri
        registered: list[str] = []
        shipped_models: dict[str, str] = {}
        with tempfile.TemporaryDirectory(prefix="registry-models-") as tmp:
            if files is None:
                extract_bundle(bundle, Path(tmp) / "unit")
                files = UnitFiles(Path(tmp) / "unit", manifest)
            report = files.file(REPORT_PATH)  # the release report (bundles since reports): at the run's root
            if report is not None:
                client.log_artifact(run_id, str(report))
            examples: dict[str, MemberExample] = {}
            for member, folder in sorted((models or {}).items()):
                name, digest = f"{release}.{member}", manifest["members"][member]["digest"]
                examples[member] = member_example(manifest, member, folder, files.file)
                same = self._versions_tagged(name, "digest", digest, pyfunc_only=True)
                if same:
                    shipped_models[name] = same[0]
                    continue
                save_member_model(Path(tmp) / "members" / member, manifest, member, folder, examples[member])
                client.log_artifacts(run_id, str(Path(tmp) / "members" / member), f"members/{member}")
                tags = {"digest": digest, RELEASE_VERSION_TAG: version, BUILT_BY_TAG: dagster_run_id}
                tags[PYFUNC_TAG] = "true"
                shipped_models[name] = str(self.register(name, f"{artifact_uri}/members/{member}", run_id, tags))
                registered.append(f"{name} v{shipped_models[name]}")
            templates = chain_templates(manifest, files.root)
            shipped_prompts, prompts = register_templates(client, release, version, templates)
            shipped = {
                MEMBERS_TAG: json.dumps(shipped_models, sort_keys=True),
                PROMPTS_TAG: json.dumps(shipped_prompts, sort_keys=True),
            }
            if not serves(manifest):  # nothing `serve` could answer with (no chain, not one model): the bundle
                client.log_artifact(run_id, str(bundle))
                return f"{artifact_uri}/{bundle.name}", shipped, registered, prompts
            example = release_example(manifest, files.file, examples)
            save_release_model(Path(tmp) / "release", manifest, bundle, example)
            client.log_artifacts(run_id, str(Path(tmp) / "release"), "release")
        return f"{artifact_uri}/release", {PYFUNC_TAG: "true", **shipped}, registered, prompts

    def _versions_tagged(self, name: str, tag: str, value: str, pyfunc_only: bool = False) -> list[str]:
        """Versions of ``name`` with ``tag`` = ``value``, oldest first (only pyfunc ones with ``pyfunc_only``)."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(f"name='{name}' and tags.{tag}='{value}'")
        except MlflowException:
            return []  # no registered model yet
        kept = [v for v in found if not pyfunc_only or (v.tags or {}).get(PYFUNC_TAG) == "true"]
        return [str(v.version) for v in sorted(kept, key=lambda v: int(v.version))]

    def has_version(self, release: str, release_version: str) -> bool:
        return self._version_of(release, release_version) is not None

    def _version_of(self, release: str, release_version: str) -> str | None:
        found = self._versions_tagged(release, RELEASE_VERSION_TAG, release_version)
        return found[0] if found else None

    def mirror(self, release: str, aliases: dict[str, str | None]) -> None:
        """Point each alias at the model version of the given release version (or remove it when None), and at the
        member model versions and prompt versions that release version shipped (removed from those it did not)."""
        self._ensure_model(release)
        for alias, release_version in aliases.items():
            mv = self._version_of(release, release_version) if release_version else None
            if mv is None:
                with contextlib.suppress(Exception):  # no such alias
                    self.client.delete_registered_model_alias(release, alias)
            else:
                self.client.set_registered_model_alias(release, alias, mv)
        shipped = self._shipped(release)
        none: tuple[dict[str, str], dict[str, int]] = ({}, {})
        targets = {alias: shipped.get(rv, none) if rv else none for alias, rv in aliases.items()}
        for name in sorted({n for members, _ in shipped.values() for n in members}):
            current = self.client.get_registered_model(name).aliases or {}
            for alias, (members, _) in targets.items():
                want = None if members.get(name) is None else str(members[name])
                if want is None and alias in current:
                    self.client.delete_registered_model_alias(name, alias)
                elif want is not None and str(current.get(alias)) != want:
                    self.client.set_registered_model_alias(name, alias, want)
        prompts = {n for _, shipped_prompts in shipped.values() for n in shipped_prompts}
        mirror_prompt_aliases(self.client, prompts, {alias: p for alias, (_, p) in targets.items()})

    def _shipped(self, release: str) -> dict[str, tuple[dict[str, str], dict[str, int]]]:
        """Release version -> the member model versions and prompt versions its registered version shipped
        (none for a version registered before these were recorded)."""
        out = {}
        for mv in self.client.search_model_versions(f"name='{release}'"):
            tags = mv.tags or {}
            if RELEASE_VERSION_TAG in tags:
                members = json.loads(tags.get(MEMBERS_TAG, "{}"))
                out[tags[RELEASE_VERSION_TAG]] = (members, json.loads(tags.get(PROMPTS_TAG, "{}")))
        return out

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
