"""Which files declare releases, so the CLI works in a ``dg`` project as it does in this repository.

A release is a ``releases/<name>.yaml`` or, in a Dagster project, a ``defs.yaml`` of ``type:
release_assets.ReleaseComponent`` anywhere under the project's defs folder (``[tool.dg.project]`` in its
``pyproject.toml`` says where that is). Plain files and YAML: no Dagster import.
"""

from __future__ import annotations

from pathlib import Path

import yaml

COMPONENT_TYPE = "release_assets.ReleaseComponent"

# A Dagster project declares a release as a ReleaseComponent: the manifest is the `attributes` of its defs.yaml.
DEFS_FILES = ("defs.yaml", "defs.yml")


def is_defs_file(path: Path) -> bool:
    return path.name in DEFS_FILES


def declares_release(path: Path) -> bool:
    """A defs.yaml whose component is a ReleaseComponent (not the platform, not another integration's)."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return COMPONENT_TYPE in path.read_text(encoding="utf-8", errors="replace")  # broken: let the loader say why
    return isinstance(document, dict) and document.get("type") == COMPONENT_TYPE


def release_files(folder: Path) -> list[Path]:
    """``folder/*.yaml`` (manifest files), then every ``defs.yaml`` below it that declares a release."""
    defs = sorted(p for name in ("defs.yaml", "defs.yml") for p in folder.rglob(name) if declares_release(p))
    return [*sorted(folder.glob("*.yaml")), *defs]
