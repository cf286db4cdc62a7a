"""Build any model kind from its dataset's split folder into an artifact folder, through the kind's runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from release_assets.manifest import ModelConfig
from release_assets.models.trainers import MODEL_KINDS


def build_model(member: ModelConfig, split_dir: Path, out_dir: Path, project_root: Path) -> dict[str, Any]:
    return MODEL_KINDS[member.kind].build(member, split_dir, out_dir, project_root)
