"""Which trainer and predictor serve each model kind; the only place that maps kinds to code."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel

from release_assets.core.settings import MODEL_RUNTIMES, Settings
from release_assets.models.onnx_export import ONNX_FILE

# Which runtime answers for the torch models: "onnx" (default: onnxruntime, no torch or transformers imported) or
# "torch" (the training-time predictor; kept for the parity check and for comparing the two in bench/serving_cold.py).
RUNTIME_ENV = "RELEASE_ASSETS_MODEL_RUNTIME"  # Settings.model_runtime
ONNX_MODULE = "release_assets.models.onnx_runtime"


def model_runtime(runtime: str | None = None) -> str:
    """``runtime``, else RELEASE_ASSETS_MODEL_RUNTIME read afresh (at each load, not cached for the process)."""

    chosen = runtime or Settings().model_runtime
    if chosen not in MODEL_RUNTIMES:
        raise ValueError(f"runtime {chosen!r}: expected one of {', '.join(MODEL_RUNTIMES)}")
    return chosen


class Predictor(Protocol):
    labels: list[str]

    def predict_proba(self, rows: list[dict[str, Any]]) -> np.ndarray: ...


@dataclass(frozen=True)
class ModelKind:
    module: str  # source module; its hash is part of the model's code version
    params: str
    trainer: str
    predictor: str
    onnx_predictor: str | None = None  # a class of ONNX_MODULE that runs the model's model.onnx

    def _attr(self, name: str) -> Any:
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

    def load(self, model_dir: Path, runtime: str | None = None) -> Predictor:
        """The model in ``model_dir``, run by onnxruntime when it has a ``model.onnx`` (unless the runtime asked
        for is torch). A model published before ONNX export has none: it is still served, through torch."""

        chosen = model_runtime(runtime)  # a mistyped runtime is an error even for a model that has no choice
        if chosen == "onnx" and self.onnx_predictor is not None and (Path(model_dir) / ONNX_FILE).is_file():
            return getattr(importlib.import_module(ONNX_MODULE), self.onnx_predictor)(model_dir)
        return self._attr(self.predictor)(model_dir)


MODEL_KINDS: dict[str, ModelKind] = {
    "tabular_classifier": ModelKind("release_assets.models.tabular", "TabularParams", "train", "TabularPredictor"),
    "image_classifier": ModelKind(
        "release_assets.models.vision", "VisionParams", "train", "VisionPredictor", "OnnxVisionPredictor"
    ),
    "text_classifier": ModelKind(
        "release_assets.models.language", "TextParams", "train", "TextPredictor", "OnnxTextPredictor"
    ),
}


def predict_labels(predictor: Predictor, rows: list[dict[str, Any]]) -> tuple[list[str], np.ndarray]:
    proba = predictor.predict_proba(rows)
    return [predictor.labels[i] for i in proba.argmax(axis=1)], proba
