"""``ReleaseComponent``: a release manifest as a Dagster Component, the one factory every release goes through.

In a ``dg`` project a release is ``defs/<name>/defs.yaml`` with ``type: release_assets.ReleaseComponent`` and the
manifest as its ``attributes``; the paths in it are relative to that folder. This repository's ``releases/*.yaml``
become the same component in ``definitions.py`` (their paths relative to the project root), so both roads build
the same assets, checks and per-release job (``wiring.py``). What all releases of a project share (jobs, sensors,
resources, executor) exists once, in ``ReleasePlatformComponent`` (below) or ``definitions.build_defs``.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import dagster as dg
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from release_assets.component.scaffold import PLATFORM_TYPE, release_name, write_release
from release_assets.component.table_scaffold import write_table_release
from release_assets.component.wiring import release_defs, resources_for, shared_defs
from release_assets.core.settings import Settings
from release_assets.manifest import (
    DEFS_FILES,
    NAME,
    ManifestError,
    Members,
    ReleaseManifest,
    Threshold,
    is_defs_file,
    parse_manifest,
)
from release_assets.manifest.defs_lines import locate
from release_assets.manifest.kinds import Task
from release_assets.manifest.paths import check_paths
from release_assets.manifest.rollout import RolloutSpec


@dataclass(frozen=True)
class Origin:
    """Where a release was declared: its paths start at ``root``; ``source`` is the file the code-change sensor
    watches and the weakened-gate check reads on the default branch (``git_base.py``)."""

    root: Path
    source: Path | None


def origin_in(folder: Path) -> Origin:
    """A component loaded from ``folder``: its defs.yaml, and the folder as the start of its paths."""
    source = next((folder / f for f in DEFS_FILES if (folder / f).is_file()), None)
    return Origin(root=folder, source=source)


class ReleaseScaffoldParams(BaseModel):
    """``dg scaffold defs release_assets.ReleaseComponent NAME [--from-table PATH --target COLUMN [--task T]]``
    (or ``--json-params '{"from_table": ..., "target": ...}'``): without a table, the starter release."""

    model_config = ConfigDict(extra="forbid")

    from_table: str | None = Field(
        default=None,
        description="a CSV, Parquet or JSONL file of the project (relative to the working directory or the project "
        "root): the release's schema, task, split and gates are inferred from it",
    )
    target: str | None = Field(default=None, description="with --from-table: the column the model predicts")
    task: Task | None = Field(default=None, description="with --from-table: instead of the task detected")


class ReleaseScaffolder(dg.Scaffolder[ReleaseScaffoldParams]):
    @classmethod
    def get_scaffold_params(cls) -> type[ReleaseScaffoldParams]:
        return ReleaseScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[ReleaseScaffoldParams]) -> None:
        if request.scaffold_format != "yaml":
            raise ValueError("a release is declared in YAML: scaffold it with --format yaml")
        target, params = Path(request.target_path), request.params
        if params is None or (params.from_table is None and not params.target and not params.task):
            write_release(target, request.type_name)
            return
        try:
            self._from_table(request, target, params)
        except ValueError as exc:  # the table, the column or the options: one line, as the release-assets CLI says it
            if target.is_dir() and not any(target.iterdir()):
                target.rmdir()  # dg made the folder: leave nothing that would refuse the corrected command
            raise SystemExit(f"FAILED: {exc}") from None

    def _from_table(
        self, request: dg.ScaffoldRequest[ReleaseScaffoldParams], target: Path, params: ReleaseScaffoldParams
    ) -> None:
        if params.from_table is None:
            raise ValueError("--target and --task describe a table: name it with --from-table PATH")
        if not params.target:
            raise ValueError(f"--from-table {params.from_table} needs --target COLUMN (the column to predict)")
        command = (
            f"dg scaffold defs {request.type_name} {target.name} --from-table {params.from_table} "
            f"--target {params.target}" + (f" --task {params.task}" if params.task else "")
        )
        write_table_release(
            release_name(target.name),
            params.from_table,
            params.target,
            target / "defs.yaml",
            request.project_root,
            task=params.task,
            type_name=request.type_name,
            command=command,
        )


@dg.scaffold_with(ReleaseScaffolder)
class ReleaseComponent(dg.Component, dg.Model, dg.Resolvable):
    """A gated, content-addressed release of datasets, models and prompt chains (release_assets).

    Each member becomes assets (data, split, model, chain, evaluation report), each gate a blocking asset check, and
    the release a `<name>/release_unit` asset that publishes a verified bundle only when every gate passed.
    Declare `release_assets.ReleasePlatformComponent` once in the project for the shared jobs, sensors and
    resources.
    """

    # The fields of ReleaseManifest (less `source`), so the schema `dg check yaml` applies is the manifest's; a test
    # keeps the two in step.
    name: Annotated[str, Field(pattern=NAME, description="release name: asset key prefix and group prefix")]
    description: str = ""
    owners: list[str] = Field(default_factory=list, description="owners of every asset of the release")
    members: Members = Field(
        description="what is built: datasets, models and prompt chains, each with a `kind` (paths relative to the "
        "folder of this defs.yaml)"
    )
    gates: dict[str, dict[str, Threshold]] = Field(
        default_factory=dict, description="member -> gate -> {min, max, severity, on_inconclusive, params}"
    )
    rollout: RolloutSpec | None = Field(default=None, description="canary ramp and budgets (optional)")

    _origin: Origin | None = PrivateAttr(default=None)
    _defs: dg.Definitions | None = PrivateAttr(default=None)

    @classmethod
    def model(cls) -> type["ReleaseComponent"]:
        # The component is its own YAML model. Dagster's derived one would also accept a string for each top-level
        # field (for templates), which turns a typo deep in `members` into "not valid under any of the given
        # schemas" at `members:`; this one names the exact field and line, and refuses what a manifest refuses.
        return cls

    @classmethod
    def resolve_from_model(cls, context: dg.ResolutionContext, model: Any) -> "ReleaseComponent":
        # Templates (`{{ env.X }}`) are rendered in every string of the manifest, which is then validated again.
        data = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
        return cls.model_validate(context.resolve_value(data))

    @classmethod
    def from_manifest(cls, manifest: ReleaseManifest, root: Path) -> "ReleaseComponent":
        """A release read from a manifest file (``releases/<name>.yaml``), its paths starting at ``root``."""
        component = cls.model_validate(manifest.model_dump(mode="json", by_alias=True, exclude={"source"}))
        component._origin = Origin(root=root, source=manifest.source)
        return component

    @classmethod
    def load(cls, attributes, context: dg.ComponentLoadContext) -> "ReleaseComponent":
        component = super().load(attributes, context)
        # Recorded at load, not at build: the platform component reads every release's manifest before (or without)
        # their definitions being built.
        component._origin = origin_in(context.path)
        return component

    def manifest(self) -> ReleaseManifest:
        """The manifest, checked as a manifest file is (references, gates, hyperparameters, paths); an error in a
        defs.yaml names its file and line."""
        origin = self._origin or Origin(root=Path.cwd(), source=None)
        where = str(origin.source or self.name)
        try:
            manifest = parse_manifest(self.model_dump(mode="json", by_alias=True), where)
            return check_paths(manifest.model_copy(update={"source": origin.source}), origin.root)
        except ManifestError as exc:
            if origin.source is not None and is_defs_file(origin.source):
                raise ManifestError(locate(str(exc), where, origin.source)) from None
            raise

    def release_defs(self) -> dg.Definitions:
        """This release's assets, checks and ``<name>_release`` job, built once per component."""
        if self._defs is None:
            manifest = self.manifest()
            self._defs = release_defs(manifest, self._origin.root if self._origin else Path.cwd())
        return self._defs

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        if self._origin is None:  # made in Python (`@dg.component_instance`): its paths start at its folder
            self._origin = origin_in(context.path)
        defs = self.release_defs()
        # The release's jobs are registered by ReleasePlatformComponent, beside the sensors that launch them: dg
        # copies each component's definitions to add metadata, and a sensor keeps only the job copies of its own.
        return dg.Definitions(assets=defs.assets, asset_checks=defs.asset_checks)


class ReleasePlatformComponent(dg.Component, dg.Model, dg.Resolvable):
    """The jobs (each release's own, release_all, promote_release, rollback_release, start_canary,
    abort_canary), sensors and resources (release store, MLflow registry, IO manager) shared by every
    release_assets.ReleaseComponent of the project. Declare it once; configure it with RELEASE_ASSETS_* variables."""

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        releases = context.component_tree.get_all_components(of_type=ReleaseComponent)
        if not releases:
            raise ValueError(f"{PLATFORM_TYPE} in {context.path}: the project declares no ReleaseComponent")
        # The project dg loads, unless RELEASE_ASSETS_PROJECT_ROOT says otherwise: the CLI run in this project
        # (list, promote, verify) finds the same root from its working directory.
        settings = Settings()
        if "project_root" not in settings.model_fields_set:  # not set in the environment
            settings = Settings(project_root=context.project_root)
        per_release = [r.release_defs() for r in releases]
        shared = shared_defs([r.manifest() for r in releases], per_release, resources_for(settings))
        # Each release's own jobs (<name>_release, ...) live here, in one set with the sensors that request them.
        return dg.Definitions.merge(dg.Definitions(jobs=[j for d in per_release for j in d.jobs or []]), shared)
