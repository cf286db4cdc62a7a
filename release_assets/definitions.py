"""The one Dagster code location: every release manifest, wired to its resources.

Releases are data: each ``releases/<name>.yaml`` becomes a ``ReleaseComponent`` (``component/component.py``, the
one factory, also used by ``dg`` projects) whose definitions come from the stage factories named explicitly in
``component/wiring.py``, so a reader sees the whole pipeline in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from release_assets.component.component import ReleaseComponent
from release_assets.component.wiring import resources_for, shared_defs
from release_assets.core.settings import get_settings
from release_assets.manifest import ReleaseManifest, load_manifests
from release_assets.manifest.paths import manifest_root

__all__ = ["build_defs", "defs", "resources_for"]  # resources_for: what the CLI configures runs with


def build_defs(manifests: list[ReleaseManifest], project_root: Path, resources: dict[str, Any]) -> dg.Definitions:
    # Every release goes through the one factory, ReleaseComponent, as in a `dg` project's defs/ folder.
    components = [ReleaseComponent.from_manifest(m, manifest_root(m, project_root)) for m in manifests]
    per_release = [c.release_defs() for c in components]
    return dg.Definitions.merge(*per_release, shared_defs(manifests, per_release, resources))


@dg.definitions
def defs() -> dg.Definitions:
    settings = get_settings()
    manifests = load_manifests(settings.releases_path, settings.project_root)
    return build_defs(manifests, settings.project_root, resources_for(settings))
