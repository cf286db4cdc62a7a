"""How a model kind is built and loaded: the runtime protocol every model kind's plugin object follows, the built-in
kinds' runtimes, and ``MODEL_KINDS``, each installed model kind's runtime by name (through the kind registry,
``manifest/kinds.py``, so a plugin's model kind is found exactly as a built-in one)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel

from release_assets.core.settings import MODEL_RUNTIMES, Settings
from release_assets.datasets.build import read_jsonl
from release_assets.manifest import ModelConfig, installed_kinds
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
    """A loaded model. Classifiers answer ``predict_proba`` (one column per label); a regression model has no
    labels (``[]``) and answers ``predict_values``; ``task`` says which (the built-ins are multiclass)."""

    labels: list[str]

    def predict_proba(self, rows: list[dict[str, Any]]) -> np.ndarray: ...


class ModelRuntime(Protocol):
    """What a model kind's plugin object (its ``MemberKind.runtime``) provides to the pipeline."""

    def build(self, member: ModelConfig, split_dir: Path, out_dir: Path, project_root: Path) -> dict[str, Any]:
        """Train (or import) the member's model from its dataset's split folder into ``out_dir``; the returned
        summary names its ``labels`` (empty for regression) and its ``format``."""
        ...

    def source_files(self, member: ModelConfig, project_root: Path) -> list[Path]:
        """Files of the project it reads (an imported model's file): their digests are inputs of the build."""
        ...

    def source_identity(self, member: ModelConfig, project_root: Path) -> Any:
        """What it reads from outside the project, as it is now (an MLflow model version), or None: read at build
        time and made an input of the build."""
        ...

    def load(self, model_dir: Path, runtime: str | None = None) -> Predictor: ...

    def code_modules(self, member: ModelConfig) -> list[str]:
        """The modules whose source (with every module they import) is the model's code version."""
        ...


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

    def build(self, member: ModelConfig, split_dir: Path, out_dir: Path, project_root: Path) -> dict[str, Any]:
        params = self.parse_params(member.params)
        train_rows = read_jsonl(split_dir / "train.jsonl")
        val_path = split_dir / "val.jsonl"
        val_rows = read_jsonl(val_path) if val_path.exists() else None
        summary = self.train(train_rows, params, out_dir, val_rows)
        summary["train_rows"] = len(train_rows)
        return summary

    def code_modules(self, member: ModelConfig) -> list[str]:
        return [self.module, __name__]

    def source_files(self, member: ModelConfig, project_root: Path) -> list[Path]:
        return []

    def source_identity(self, member: ModelConfig, project_root: Path) -> Any:
        return None

    def load(self, model_dir: Path, runtime: str | None = None) -> Predictor:
        """The model in ``model_dir``, run by onnxruntime when it has a ``model.onnx`` (unless the runtime asked
        for is torch). A model published before ONNX export has none: it is still served, through torch."""

        chosen = model_runtime(runtime)  # a mistyped runtime is an error even for a model that has no choice
        if chosen == "onnx" and self.onnx_predictor is not None and (Path(model_dir) / ONNX_FILE).is_file():
            return getattr(importlib.import_module(ONNX_MODULE), self.onnx_predictor)(model_dir)
        return self._attr(self.predictor)(model_dir)


# The built-in kinds' runtimes, named by their MemberKind declarations (manifest/builtin_kinds.py).
TABULAR = ModelKind("release_assets.models.tabular", "TabularParams", "train", "TabularPredictor")
IMAGE = ModelKind("release_assets.models.vision", "VisionParams", "train", "VisionPredictor", "OnnxVisionPredictor")
TEXT = ModelKind("release_assets.models.language", "TextParams", "train", "TextPredictor", "OnnxTextPredictor")


class ModelRuntimes(MutableMapping[str, ModelRuntime]):
    """Every installed model kind's runtime by kind name, imported the first time it is asked for (a server loads
    only the kinds its release holds). Assigning a name registers a runtime for this process only (tests' fakes)."""

    def __init__(self) -> None:
        self._loaded: dict[str, Any] = {}

    def __getitem__(self, kind: str) -> Any:
        if kind not in self._loaded:
            declared = installed_kinds().get(kind)
            if declared is None or declared.family != "model":
                raise KeyError(kind)
            self._loaded[kind] = declared.load_runtime()
        return self._loaded[kind]

    def __contains__(self, kind: object) -> bool:
        if kind in self._loaded:
            return True
        declared = installed_kinds().get(kind) if isinstance(kind, str) else None
        return declared is not None and declared.family == "model"

    def __iter__(self) -> Iterator[str]:
        names = [k for k, v in installed_kinds().items() if v.family == "model"]
        return iter(dict.fromkeys([*names, *self._loaded]))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __setitem__(self, kind: str, runtime: Any) -> None:
        self._loaded[kind] = runtime

    def __delitem__(self, kind: str) -> None:
        del self._loaded[kind]


MODEL_KINDS = ModelRuntimes()


EMBEDDING = "embedding"  # a model that maps text to vectors and decides nothing (``models/embedding.py``)


def task_of(predictor: Any) -> str:
    return getattr(predictor, "task", "multiclass")


def predict_labels(predictor: Predictor, rows: list[dict[str, Any]]) -> tuple[list[str], np.ndarray]:
    proba = predictor.predict_proba(rows)
    return [predictor.labels[i] for i in proba.argmax(axis=1)], proba
