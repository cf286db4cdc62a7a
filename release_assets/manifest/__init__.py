"""The declarative release manifest (``releases/<name>.yaml``) and its validation.

A manifest names a release's members, what kind each is, what it is built from, and the gates it must pass.
The asset factory turns it into assets and checks, so adding a release is adding a file. Every error names the
file and the field, because the person reading it is editing YAML, not Python.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from release_assets.manifest.defs_files import DEFS_FILES, is_defs_file, release_files
from release_assets.manifest.defs_lines import locate
from release_assets.manifest.errors import ManifestError, validation_problems
from release_assets.manifest.external_models import ImportedModel, PythonModel
from release_assets.manifest.gates import check_thresholds
from release_assets.manifest.kinds import MemberKind, family, installed_kinds, kind_names, member_kind
from release_assets.manifest.models import (
    NAME,
    DatasetConfig,
    ImageClassifier,
    JsonlDataset,
    Member,
    MemberConfig,
    Members,
    MftCase,
    ModelConfig,
    PromptChain,
    ReleaseManifest,
    SklearnDataset,
    SplitSpec,
    TabularClassifier,
    TextClassifier,
    Threshold,
    parse_member,
    release_name_problem,
)
from release_assets.manifest.params import MODEL_PARAMS
from release_assets.manifest.paths import check_paths
from release_assets.manifest.table import TableDataset

# What the package exports: the models, the kinds, the errors and the loading API.
__all__ = [
    "DEFS_FILES",
    "NAME",
    "DatasetConfig",
    "ImageClassifier",
    "ImportedModel",
    "JsonlDataset",
    "ManifestError",
    "Member",
    "MemberConfig",
    "MemberKind",
    "Members",
    "MftCase",
    "ModelConfig",
    "PromptChain",
    "PythonModel",
    "ReleaseManifest",
    "SklearnDataset",
    "SplitSpec",
    "TableDataset",
    "TabularClassifier",
    "TextClassifier",
    "Threshold",
    "family",
    "installed_kinds",
    "is_defs_file",
    "kind_names",
    "load_each",
    "load_manifest",
    "load_manifests",
    "member_kind",
    "member_section",
    "parse_manifest",
    "release_manifest",
    "release_name_problem",
    "validation_problems",
]


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "<top level>"


def _check_references(manifest: ReleaseManifest, where: str) -> None:
    for name, member in manifest.members.items():
        field = "data" if hasattr(member, "data") else "uses"
        for dep in member.upstream:
            if dep not in manifest.members:
                raise ManifestError(
                    f"{where}: members.{name}.{field}: '{dep}' is not a declared member "
                    f"(declared: {', '.join(sorted(manifest.members))})"
                )
    for name, member in manifest.members.items():
        for producer in member.expects:
            if producer not in member.upstream:
                built_from = ", ".join(member.upstream) or "nothing"
                raise ManifestError(
                    f"{where}: members.{name}.expects.{producer}: '{producer}' is not a member {name} is built "
                    f"from (it is built from: {built_from})"
                )
    for name, model in manifest.members_of_family("model").items():
        assert isinstance(model, ModelConfig)  # members_of_family("model") holds ModelConfig instances
        if not model.from_data:
            _check_params(name, model, where)
            continue
        if not model.upstream:
            raise ManifestError(f"{where}: members.{name}.data: missing (a {model.kind} learns from a dataset)")
        data = manifest.members[model.upstream[0]]
        if not isinstance(data, DatasetConfig):
            raise ManifestError(f"{where}: members.{name}.data: '{model.upstream[0]}' is not a dataset")
        if isinstance(model, PythonModel | ImportedModel) and not isinstance(data, TableDataset):
            raise ManifestError(
                f"{where}: members.{name}.data: a {model.kind} learns from a `table` dataset, "
                f"'{model.upstream[0]}' is a {data.kind}"
            )
        task = data.learning_task()
        if task not in member_kind(model.kind).tasks:
            raise ManifestError(
                f"{where}: members.{name}.kind: a {model.kind} cannot learn the {task} task of '{model.upstream[0]}' "
                f"(it supports {', '.join(sorted(member_kind(model.kind).tasks))})"
            )
        _check_params(name, model, where)
    for name, gates in manifest.gates.items():
        if name not in manifest.members:
            raise ManifestError(f"{where}: gates.{name}: no member named '{name}'")
        member = manifest.members[name]
        learns = manifest.task_of(name) or (member.learning_task() if isinstance(member, DatasetConfig) else None)
        check_thresholds(name, member.kind, gates, where, member, learns)
    try:
        manifest.topological_order()
    except ManifestError as exc:
        raise ManifestError(f"{where}: {exc}") from None


def _check_params(name: str, member: Any, where: str) -> None:
    """Hyperparameters are validated here, against the trainer's own schema (``params.py``), so a typo fails before
    training."""
    schema = MODEL_PARAMS.get(member.kind)  # the built-in trainers' hyperparameters; a user's are its own
    if schema is None:
        return
    try:
        schema.model_validate(member.params)
    except ValidationError as exc:
        raise ManifestError(f"{where}: {validation_problems(exc, f'members.{name}.params.')}") from None


def parse_manifest(data: Any, where: str) -> ReleaseManifest:
    if isinstance(data, dict) and "type" in data and "attributes" in data:
        data = data["attributes"]  # a component's defs.yaml (read by the sensor and the weakened-gate check)
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected a mapping at the top level, found {type(data).__name__}")
    if isinstance(data.get("members"), dict):
        # Each member by its own kind's model first, so a bad entry is named by its field (members.<name>.<field>).
        try:
            members = {name: parse_member(str(name), entry) for name, entry in data["members"].items()}
        except ManifestError as exc:
            raise ManifestError(f"{where}: {exc}") from None
        data = {**data, "members": members}
    try:
        manifest = ReleaseManifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(f"{where}: {validation_problems(exc, path=_field_path)}") from None
    _check_references(manifest, where)
    return manifest


def release_manifest(releases_dir: Path, release: str) -> ReleaseManifest:
    """The manifest of the release a person named: a name that is not a release name (``../../x``) is refused
    before any path is built from it, so no command reads a file outside ``releases/``."""
    problem = release_name_problem(release)
    if problem:
        raise ManifestError(problem)
    return load_manifest(Path(releases_dir) / f"{release}.yaml")


def load_manifest(path: Path) -> ReleaseManifest:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML: {exc}") from None
    manifest = parse_manifest(data, str(path))
    if manifest.name != path.stem and not is_defs_file(path):
        raise ManifestError(f"{path}: name: '{manifest.name}' must match the file name '{path.stem}'")
    return manifest.model_copy(update={"source": path})


def _manifest_paths(releases_dir: Path) -> list[Path]:
    paths = release_files(releases_dir)  # also a dg project's ReleaseComponent defs.yaml files
    if not paths:
        raise ManifestError(f"{releases_dir}: no release manifests (*.yaml) found")
    return paths


def _load_checked(path: Path, root: Path) -> ReleaseManifest:
    try:
        return check_paths(load_manifest(path), root)
    except ManifestError as exc:
        if not is_defs_file(path):
            raise
        # a component's defs.yaml: file:line, as dg reports
        raise ManifestError(locate(str(exc), str(path), path)) from None


def load_manifests(releases_dir: Path, project_root: Path | None = None) -> list[ReleaseManifest]:
    """Every manifest, each checked against the files it names; the first error stops (for definitions)."""
    root = project_root or releases_dir.parent
    return [_load_checked(p, root) for p in _manifest_paths(releases_dir)]


def load_each(releases_dir: Path, project_root: Path | None = None) -> tuple[list[ReleaseManifest], list[str]]:
    """Every manifest that loads, and one error line per manifest that does not: a broken release must not stop
    the CLI from running, listing or promoting the others."""
    root = project_root or releases_dir.parent
    loaded, errors = [], []
    for path in _manifest_paths(releases_dir):
        try:
            loaded.append(_load_checked(path, root))
        except ManifestError as exc:
            errors.append(str(exc))
    return loaded, errors


def member_section(manifest: ReleaseManifest, member: str) -> dict[str, Any]:
    """What a member's code version hashes: its own manifest entry and its gates."""
    return {
        "member": manifest.members[member].model_dump(mode="json", by_alias=True),
        "gates": {k: v.model_dump(mode="json") for k, v in manifest.gates.get(member, {}).items()},
    }
