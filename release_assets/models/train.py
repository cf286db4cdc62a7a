"""Build any model kind from its dataset's split folder into an artifact folder, through the kind's runtime."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from release_assets.core.hashing import sha256_file
from release_assets.datasets.build import read_jsonl
from release_assets.manifest import ModelConfig
from release_assets.models.trainers import MODEL_KINDS, task_of


def build_model(
    member: ModelConfig, split_dir: Path | None, out_dir: Path, project_root: Path, check_reproducible: bool = False
) -> dict[str, Any]:
    """``check_reproducible`` (the member has a `reproducibility` gate): train a second time and record how far
    the two models are apart, as the metric the gate compares with its `max`. ``split_dir`` is None for a model
    built from no dataset (pre-trained embeddings), which has nothing to retrain."""
    runtime = MODEL_KINDS[member.kind]
    summary = runtime.build(member, split_dir, out_dir, project_root)
    if check_reproducible and split_dir is not None:
        difference = retrain_difference(member, split_dir, out_dir, project_root)
        summary["metrics"] = {**summary.get("metrics", {}), "reproducibility": difference}
    return summary


def _file_digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def retrain_difference(member: ModelConfig, split_dir: Path, built: Path, project_root: Path) -> float:
    """0 when training again gives the same bytes; else the largest absolute difference between the two models'
    predictions on the test split (class probabilities, or regression values)."""
    runtime = MODEL_KINDS[member.kind]
    with tempfile.TemporaryDirectory(prefix="retrain-") as work:
        again = Path(work)
        runtime.build(member, split_dir, again, project_root)
        if _file_digests(again) == _file_digests(built):
            return 0.0
        rows = read_jsonl(split_dir / "test.jsonl")
        first, second = runtime.load(built), runtime.load(again)
        if task_of(first) == "regression":
            a, b = first.predict_values(rows), second.predict_values(rows)
        else:
            a, b = first.predict_proba(rows), second.predict_proba(rows)
        return float(np.max(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)))) if len(rows) else 0.0
