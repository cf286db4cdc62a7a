"""The files a manifest names exist: checked when it loads, so a typo in a path is not found mid-run."""

from __future__ import annotations

from pathlib import Path

from release_assets.core.hashing import module_file
from release_assets.manifest.defs_files import is_defs_file
from release_assets.manifest.errors import ManifestError
from release_assets.manifest.external_models import MLFLOW_SCHEMES, ImportedModel, PythonModel
from release_assets.manifest.models import PromptChain, ReleaseManifest

# Member fields that name files or folders of the project; checked at load so a typo is not found mid-run.
_PATH_FIELDS = {
    "path": "path",
    "golden": "file",
    "knowledge_base": "file",
    "traffic": "file",
    "labelled": "file",  # a judge_model's labelled set
    "judge_labels": "file",  # the labelled set a chain's judge is calibrated on
}


def manifest_root(manifest: ReleaseManifest, project_root: Path) -> Path:
    """Where the manifest's paths start: the folder of a component's ``defs.yaml`` (a Dagster component keeps its
    files beside it, so a release folder can be copied between projects whole), else the project root
    (``releases/<name>.yaml``)."""
    if manifest.source is not None and is_defs_file(Path(manifest.source)):
        return Path(manifest.source).parent
    return project_root


def check_paths(manifest: ReleaseManifest, project_root: Path) -> ReleaseManifest:
    where = manifest.source or manifest.name
    project_root = manifest_root(manifest, project_root)
    for name, member in manifest.members.items():
        for field, what in _PATH_FIELDS.items():
            value = getattr(member, field, None)
            if value is None or value.startswith(("s3://", *MLFLOW_SCHEMES)):
                continue  # not set, or not a file: an s3:// table or an MLflow model URI, read when built
            target = project_root / value
            if not target.exists():
                raise ManifestError(f"{where}: members.{name}.{field}: {value} does not exist (in {project_root})")
            if what == "file" and not target.is_file():
                raise ManifestError(f"{where}: members.{name}.{field}: {value} is not a file")
        # A judge_model's golden suites and knowledge bases (the facts its generated rows come from).
        for i, source in enumerate(getattr(member, "generated_from", None) or []):
            for field in ("golden", "knowledge_base"):
                if not (project_root / getattr(source, field)).is_file():
                    raise ManifestError(
                        f"{where}: members.{name}.generated_from[{i}].{field}: {getattr(source, field)} is not a file "
                        f"(in {project_root})"
                    )
        # The team's code is found (not run) now: its source is the model's (training) or the report's (metrics)
        # code version, read at load.
        code = {"train": member.train} if isinstance(member, PythonModel) else {}
        if isinstance(member, PythonModel | ImportedModel) and member.metrics is not None:
            code["metrics"] = member.metrics
        for field, ref in code.items():
            module = ref.partition(":")[0]
            if module_file(module) is None:
                raise ManifestError(
                    f"{where}: members.{name}.{field}: {ref!r} does not import: no module named "
                    f"{module!r} (is the package installed, or on PYTHONPATH?)"
                )
        if isinstance(member, PromptChain) and not (project_root / member.path / member.chain_file).is_file():
            raise ManifestError(
                f"{where}: members.{name}.chain_file: {member.chain_file} does not exist in {member.path}"
            )
    return manifest
