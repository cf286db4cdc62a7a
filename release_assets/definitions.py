"""The one Dagster code location: every release manifest, wired to its resources.

Releases are data: each ``releases/<name>.yaml`` becomes a ``ReleaseComponent`` (``component/component.py``, the
one factory, also used by ``dg`` projects) whose definitions come from the stage factories named explicitly in
``component/wiring.py``, so a reader sees the whole pipeline in one place.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import dagster as dg

from release_assets.component.component import ReleaseComponent
from release_assets.component.wiring import resources_for, shared_defs
from release_assets.core.settings import Settings, get_settings
from release_assets.core.team_code import one_line
from release_assets.manifest import ManifestError, ReleaseManifest, load_manifests
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


@dg.definitions
def defs() -> dg.Definitions:
    settings = get_settings()
    manifests = load_manifests(settings.releases_path, settings.project_root)
    return build_defs(manifests, settings.project_root, resources_for(settings), project_definitions(settings))
