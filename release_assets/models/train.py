"""Train any model kind from its dataset's split folder into an artifact folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from release_assets.datasets.build import read_jsonl
from release_assets.models.trainers import MODEL_KINDS


def build_model(kind: str, raw_params: dict[str, Any], split_dir: Path, out_dir: Path) -> dict[str, Any]:
    model_kind = MODEL_KINDS[kind]
    params = model_kind.parse_params(raw_params)
    train_rows = read_jsonl(split_dir / "train.jsonl")
    val_path = split_dir / "val.jsonl"
    val_rows = read_jsonl(val_path) if val_path.exists() else None
    summary = model_kind.train(train_rows, params, out_dir, val_rows)
    summary["train_rows"] = len(train_rows)
    return summary
