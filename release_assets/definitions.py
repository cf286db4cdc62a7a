"""The one Dagster code location: every release manifest, wired to its resources.

Releases are data: each ``releases/<name>.yaml`` becomes a ``ReleaseComponent`` (``component/component.py``, the
one factory, also used by ``dg`` projects) whose definitions come from the stage factories named explicitly in
``component/wiring.py``, so a reader sees the whole pipeline in one place.
"""

from __future__ import annotations

import fcntl
import importlib
import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import dagster as dg

from release_assets.component.component import ReleaseComponent
from release_assets.component.wiring import resources_for, shared_defs
from release_assets.core.atomic import copy_atomic
from release_assets.core.settings import Settings, get_settings
from release_assets.core.team_code import one_line
from release_assets.manifest import ManifestError, ReleaseManifest, load_each, load_manifests
from release_assets.manifest.paths import manifest_root

# resources_for: what the CLI configures runs with
__all__ = ["build_defs", "defs", "project_definitions", "resources_for"]


def build_defs(
    manifests: list[ReleaseManifest],
    project_root: Path,
    resources: dict[str, Any],
    project: dg.Definitions | None = None,
) -> dg.Definitions:
    """Every release, with what they share; ``project``: the team's own definitions, whose assets members name."""
    # Every release goes through the one factory, ReleaseComponent, as in a `dg` project's defs/ folder.
    components = [ReleaseComponent.from_manifest(m, manifest_root(m, project_root)) for m in manifests]
    per_release = [c.release_defs() for c in components]
    check_member_assets(manifests, project)
    merged = dg.Definitions.merge(*per_release, shared_defs(manifests, per_release, resources))
    return dg.Definitions.merge(project, merged) if project is not None else merged


def check_member_assets(manifests: list[ReleaseManifest], project: dg.Definitions | None) -> None:
    """Every `asset:` a member names is an asset of the team's definitions: said here, naming the member and
    the setting, rather than as Dagster's unresolved-input error at run time."""
    known = {spec.key.to_user_string() for spec in project.resolve_all_asset_specs()} if project is not None else set()
    for manifest in manifests:
        for name, member in manifest.members_of_family("dataset").items():
            wanted = getattr(member, "asset", None)
            if wanted is not None and wanted not in known:
                where = project_definitions_hint(project)
                raise ManifestError(f"{manifest.source or manifest.name}: members.{name}.asset: {wanted} {where}")


def project_definitions_hint(project: dg.Definitions | None) -> str:
    if project is None:
        return (
            "is not an asset here: no project definitions are loaded (set RELEASE_ASSETS_PROJECT_DEFINITIONS="
            "package.module:defs, or declare the release as a ReleaseComponent in your dg project)"
        )
    return "is not an asset of the project's definitions (RELEASE_ASSETS_PROJECT_DEFINITIONS)"


def project_definitions(settings: Settings) -> dg.Definitions | None:
    """The team's own Definitions named by RELEASE_ASSETS_PROJECT_DEFINITIONS, or None."""
    if settings.project_definitions is None:
        return None
    module, _, attribute = settings.project_definitions.partition(":")
    try:
        found = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise ManifestError(f"RELEASE_ASSETS_PROJECT_DEFINITIONS={settings.project_definitions}: {exc}") from None
    if callable(found) and not isinstance(found, dg.Definitions):  # a @dg.definitions function, or any factory
        try:
            found = found()
        except Exception as exc:  # the team's code: a factory needing arguments, or one that fails
            raise ManifestError(
                f"RELEASE_ASSETS_PROJECT_DEFINITIONS={settings.project_definitions}: {one_line(exc)}"
            ) from None
    if not isinstance(found, dg.Definitions):
        raise ManifestError(
            f"RELEASE_ASSETS_PROJECT_DEFINITIONS={settings.project_definitions}: a {type(found).__name__}, "
            "not a dagster Definitions"
        )
    return found


def dagster_instance(project_root: Path) -> dg.DagsterInstance:
    """The Dagster instance under ``$DAGSTER_HOME`` (default ``.dagster/``, seeded from the top dagster.yaml)."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(project_root / ".dagster")))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    # Concurrent first runs (two CI jobs on a fresh clone) would each create the sqlite schemas and stamp their
    # alembic revision, leaving tables with two heads that no later run can open: one process at a time opens it.
    with open(home / ".instance.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not config.exists() and (project_root / "dagster.yaml").exists():
                copy_atomic(project_root / "dagster.yaml", config)
            return dg.DagsterInstance.get()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def definitions(manifests: list[ReleaseManifest] | None = None) -> dg.Definitions:
    settings = get_settings()
    if manifests is None:  # promote/rollback: the jobs need definitions, and a broken manifest must not stop them
        manifests = load_each(settings.releases_path, settings.project_root)[0]
    return build_defs(manifests, settings.project_root, resources_for(settings), project_definitions(settings))


def run_job(
    job_name: str,
    run_config: dict[str, Any] | None = None,
    *,
    manifests: list[ReleaseManifest] | None = None,
    defs: dg.Definitions | None = None,
    display: Callable[[Any], AbstractContextManager[Any]] | None = None,
) -> dg.ExecuteInProcessResult:
    """Execute a job of the definitions in this process, on the project's instance; ``display`` wraps the job while
    it runs (loggers it adds are enabled in a run config that names loggers: only those named are built)."""
    settings = get_settings()
    defs = defs or definitions(manifests)
    job = defs.resolve_job_def(job_name)
    wrapped = display(job) if display is not None else nullcontext(job)
    with dagster_instance(settings.project_root) as instance, wrapped as shown:
        if run_config and "loggers" in run_config:
            added: dict[str, Any] = {name: {} for name in shown.loggers if name not in job.loggers}
            run_config = {**run_config, "loggers": {**run_config["loggers"], **added}}
        return shown.execute_in_process(instance=instance, raise_on_error=False, run_config=run_config)


@dg.definitions
def defs() -> dg.Definitions:
    settings = get_settings()
    manifests = load_manifests(settings.releases_path, settings.project_root)
    return build_defs(manifests, settings.project_root, resources_for(settings), project_definitions(settings))
