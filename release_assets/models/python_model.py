"""The ``python_model`` kind: a function of the team's own package trains the model, this package stores it safely,
evaluates it and serves it like any other.

The function is called as ``train(X, y, params)``: the train split's feature columns (a DataFrame, dtypes as the
table's schema declares), the target (a Series of class names, or of numbers for regression) and the member's
``params``. It returns a fitted scikit-learn-style estimator (stored through skops) or, with ``format: onnx``, an
ONNX model. Its code version is the import closure of the function's module within its own package
(``core/hashing.py``), so editing the training code retrains this model and nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from release_assets.core.team_code import TeamCodeError, import_function, one_line
from release_assets.datasets.build import read_jsonl
from release_assets.datasets.table import TABLE_FILE
from release_assets.manifest import ModelConfig, PythonModel
from release_assets.models.table_predictor import (
    ONNX_FILE,
    SKOPS_FILE,
    ModelFileError,
    TablePredictor,
    canonical_zip,
    check_onnx,
    feature_frame,
    ordered_features,
    untrusted_types,
    write_signature,
)


class TrainingError(RuntimeError):
    """The team's training function could not be imported, raised, or returned something unusable."""


def training_function(ref: str) -> Any:
    try:
        return import_function(ref)
    except TeamCodeError as exc:
        raise TrainingError(f"train: {exc}") from None


def _target(rows: list[dict[str, Any]], task: str):
    import pandas as pd

    values = [float(r["label"]) if task == "regression" else r["label"] for r in rows]
    return pd.Series(values, name="target")


def _store(model: Any, member: PythonModel, out_dir: Path) -> None:
    if member.format == "onnx":
        payload = model if isinstance(model, bytes) else getattr(model, "SerializeToString", lambda: None)()
        if not isinstance(payload, bytes):
            raise TrainingError(f"train: {member.train} returned a {type(model).__name__}, not an ONNX model")
        (out_dir / ONNX_FILE).write_bytes(payload)
        check_onnx(out_dir / ONNX_FILE)
        return
    import skops.io as sio

    try:
        data = sio.dumps(model)
    except Exception as exc:  # skops refuses objects it cannot represent safely
        raise TrainingError(
            f"train: {member.train} returned a {type(model).__name__} skops cannot store: {exc}"
        ) from None
    path = out_dir / SKOPS_FILE
    path.write_bytes(canonical_zip(data))
    refused = untrusted_types(path, member.trusted_types)
    if refused:
        raise TrainingError(
            f"train: the model holds types nobody trusted: {', '.join(refused)} (list them under "
            "`trusted_types:` to load them from the bundle)"
        )


class PythonModelRuntime:
    def code_modules(self, member: ModelConfig) -> list[str]:
        assert isinstance(member, PythonModel)
        return [__name__, "release_assets.models.table_predictor", member.module]

    def source_files(self, member: ModelConfig, project_root: Path) -> list[Path]:
        return []

    def source_identity(self, member: ModelConfig, project_root: Path) -> Any:
        return None

    def build(self, member: ModelConfig, split_dir: Path, out_dir: Path, project_root: Path) -> dict[str, Any]:
        assert isinstance(member, PythonModel)
        table = json.loads((split_dir / TABLE_FILE).read_text())
        rows = read_jsonl(split_dir / "train.jsonl")
        function = training_function(member.train)
        try:
            model = function(
                feature_frame(rows, ordered_features(table)), _target(rows, table["task"]), dict(member.params)
            )
        except Exception as exc:  # whatever the team's code raises is reported as its own failure
            raise TrainingError(f"train: {member.train} raised {one_line(exc)}") from None
        if model is None:
            raise TrainingError(f"train: {member.train} returned None (it must return the fitted model)")
        _store(model, member, out_dir)
        write_signature(out_dir, table, member.format, member.trusted_types)
        try:  # the stored model, loaded as evaluation and serving load it, answers the rows it learnt from
            loaded = TablePredictor(out_dir)
            (loaded.predict_values if table["task"] == "regression" else loaded.predict_proba)(rows[:5])
        except ModelFileError:
            raise
        except Exception as exc:
            raise TrainingError(f"train: the model {member.train} returned cannot predict: {one_line(exc)}") from None
        return {
            "labels": table["labels"],
            # The interface it offers (manifest/contracts.py): the feature columns it reads, with their dtypes.
            "columns": {name: spec["dtype"] for name, spec in ordered_features(table).items()},
            "task": table["task"],
            "format": member.format,
            "train_rows": len(rows),
            "params": dict(member.params),
        }

    def load(self, model_dir: Path, runtime: str | None = None) -> TablePredictor:
        return TablePredictor(model_dir)


RUNTIME = PythonModelRuntime()
