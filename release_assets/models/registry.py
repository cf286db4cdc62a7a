"""Which trainer and predictor serve each model kind; the only place that maps kinds to code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel


class Predictor(Protocol):
    labels: list[str]

    def predict_proba(self, rows: list[dict[str, Any]]) -> np.ndarray: ...


@dataclass(frozen=True)
class ModelKind:
    module: str  # source module; its hash is part of the model's code version
    params: str
    trainer: str
    predictor: str

    def _attr(self, name: str) -> Any:
        import importlib

        return getattr(importlib.import_module(self.module), name)

    def parse_params(self, raw: dict[str, Any]) -> BaseModel:
        return self._attr(self.params).model_validate(raw)

    def train(
        self,
        rows: list[dict[str, Any]],
        params: BaseModel,
        out_dir: Path,
        val_rows: list[dict[str, Any]] | None,
    ) -> dict[str, Any]:
        return self._attr(self.trainer)(rows, params, out_dir, val_rows=val_rows)

    def load(self, model_dir: Path) -> Predictor:
        return self._attr(self.predictor)(model_dir)


MODEL_KINDS: dict[str, ModelKind] = {
    "tabular_classifier": ModelKind("release_assets.models.tabular", "TabularParams", "train", "TabularPredictor"),
    "image_classifier": ModelKind("release_assets.models.vision", "VisionParams", "train", "VisionPredictor"),
    "text_classifier": ModelKind("release_assets.models.language", "TextParams", "train", "TextPredictor"),
}


def predict_labels(predictor: Predictor, rows: list[dict[str, Any]]) -> tuple[list[str], np.ndarray]:
    proba = predictor.predict_proba(rows)
    return [predictor.labels[i] for i in proba.argmax(axis=1)], proba
