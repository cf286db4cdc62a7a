"""``ReleasePlatformComponent``: what every release of a ``dg`` project shares, declared once.

Jobs, sensors, resources and the executor must exist once per code location however many releases it has, so they
cannot come from each ``ReleaseComponent`` (a second copy of ``promote_release`` is a duplicate-name error). This
component finds every ``ReleaseComponent`` of the project through the component tree and builds the shared part
with the same function this repository's ``definitions.py`` uses: ``release_all`` over all of them, the
promotion, rollback and canary jobs, the code-change, failed-gate and canary sensors, the store, MLflow and IO
resources (``RELEASE_ASSETS_*`` settings, rooted at the project root), the executor.
"""

import os

import dagster as dg

from release_assets.component import ReleaseComponent
from release_assets.scaffold import PLATFORM_TYPE


class ReleasePlatformComponent(dg.Component, dg.Model, dg.Resolvable):
    """The jobs (each release's own, release_all, promote_release, rollback_release, start_canary,
    abort_canary), sensors and resources (release store, MLflow registry, IO manager) shared by every
    release_assets.ReleaseComponent of the project. Declare it once; configure it with RELEASE_ASSETS_* variables."""

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from release_assets.definitions import resources_for, shared_defs
        from release_assets.settings import Settings

        releases = context.component_tree.get_all_components(of_type=ReleaseComponent)
        if not releases:
            raise ValueError(f"{PLATFORM_TYPE} in {context.path}: the project declares no ReleaseComponent")
        # The project dg loads, unless RELEASE_ASSETS_PROJECT_ROOT says otherwise: the CLI run in this project
        # (list, promote, verify) finds the same root from its working directory.
        root = {} if os.environ.get("RELEASE_ASSETS_PROJECT_ROOT") else {"project_root": context.project_root}
        settings = Settings(**root)
        per_release = [r.release_defs() for r in releases]
        shared = shared_defs([r.manifest() for r in releases], per_release, resources_for(settings))
        # Each release's own jobs (<name>_release, ...) live here, in one set with the sensors that request them.
        return dg.Definitions.merge(dg.Definitions(jobs=[j for d in per_release for j in d.jobs or []]), shared)
