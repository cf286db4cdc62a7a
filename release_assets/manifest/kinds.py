"""Member kinds and the family each belongs to: what the gate table, the assets and the bundle key on."""

from __future__ import annotations

from typing import Literal

DATASET_KINDS = ("sklearn_dataset", "jsonl_dataset")
MODEL_KINDS = ("tabular_classifier", "text_classifier", "image_classifier")


def family(kind: str) -> Literal["dataset", "model", "chain"]:
    """The one mapping from member kind to what the pipeline does with it (its assets, bundle entries, gates)."""
    return "dataset" if kind in DATASET_KINDS else "model" if kind in MODEL_KINDS else "chain"
