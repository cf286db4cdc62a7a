"""A model of a ``table`` dataset, stored in a safe format, loaded and asked to predict: what the ``python_model``
and ``imported_model`` kinds share (building them is theirs: ``python_model.py``, ``imported.py``).

Two stored formats, both loadable without running pickled code: a scikit-learn estimator through skops (``sklearn``:
only the types skops lists as untrusted and the member names are trusted, beyond scikit-learn's, numpy's and
scipy's own), or an ONNX graph (``onnx``: one float tensor of the feature columns in, class probabilities or one
value per row out). Beside the model, ``signature.json`` records the task, the feature columns with their declared
dtypes and the classes: evaluation, serving and request validation read it, never the training data.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

SIGNATURE_FILE = "signature.json"
SKOPS_FILE = "model.skops"
ONNX_FILE = "model.onnx"
# skops types trusted without being named: the estimators, arrays and sparse matrices of these libraries.
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


class ModelFileError(ValueError):
    """A stored or imported model that cannot be used; the message names the file and the cause."""


def canonical_zip(data: bytes) -> bytes:
    """A skops file rewritten with fixed entry times and order: skops stamps each entry with the time it was
    written, so the same model would otherwise give different bytes (and a different version) on every run."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in sorted(src.namelist()):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, src.read(name))
    return out.getvalue()


def untrusted_types(path: Path, trusted: list[str]) -> list[str]:
    """Types in a skops file that would run code nobody vouched for: neither under TRUSTED_PREFIXES nor named."""
    import skops.io as sio

    try:
        found = sio.get_untrusted_types(file=path)
    except Exception as exc:  # a damaged or foreign file: skops raises whatever its zip or JSON reader does
        raise ModelFileError(f"{path.name}: not a skops file ({type(exc).__name__}: {exc})") from None
    return sorted(t for t in found if not t.startswith(TRUSTED_PREFIXES) and t not in trusted)


def load_skops(path: Path, trusted: list[str]) -> Any:
    import skops.io as sio

    refused = untrusted_types(path, trusted)
    if refused:
        raise ModelFileError(
            f"{path.name}: holds types nobody trusted: {', '.join(refused)} (list them under `trusted_types:` "
            "if they are your own code)"
        )
    return sio.load(path, trusted=sio.get_untrusted_types(file=path))


def check_onnx(path: Path) -> Any:
    """The ONNX model in ``path``, checked; a file that is not one is an error naming it."""
    import onnx

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises DecodeError, ValidationError or OSError, by what is wrong
        raise ModelFileError(f"{path}: not an ONNX model ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    return model


def ordered_features(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The feature columns of a table.json or signature.json, in the dataset's declared order."""
    return {name: info["features"][name] for name in info["feature_columns"]}


def feature_frame(rows: list[dict[str, Any]], features: dict[str, dict[str, Any]]):
    """The rows' feature columns as a DataFrame, each column of its declared dtype (what the training function
    received, so a model predicts on what it learnt from)."""
    import pandas as pd

    frame = pd.DataFrame.from_records([r["features"] for r in rows], columns=list(features))
    for name, spec in features.items():
        dtype = spec.get("dtype")
        if dtype == "int":
            frame[name] = frame[name].astype("Int64" if frame[name].isna().any() else "int64")
        elif dtype == "float":
            frame[name] = frame[name].astype("float64")
        elif dtype == "bool":
            frame[name] = frame[name].astype("boolean" if frame[name].isna().any() else "bool")
        elif dtype == "datetime":
            frame[name] = pd.to_datetime(frame[name])
    return frame


class TablePredictor:
    """A stored table model (module docstring): ``predict_proba`` for classification, ``predict_values`` for
    regression, both over rows shaped like the dataset's (``{"features": {column: value}}``)."""

    def __init__(self, model_dir: Path, trusted: list[str] | None = None) -> None:
        model_dir = Path(model_dir)
        signature = json.loads((model_dir / SIGNATURE_FILE).read_text())
        self.task: str = signature["task"]
        self.labels: list[str] = list(signature["labels"])
        # A binary model's positive class (what ROC AUC, PR AUC and calibration score); older signatures: labels[1].
        self.positive: str | None = signature.get("positive") or (self.labels[1] if self.task == "binary" else None)
        self.features: dict[str, dict[str, Any]] = ordered_features(signature)
        self.format: str = signature["model_format"]
        if self.format == "onnx":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1  # one request at a time: threads cost more than they save here
            self._session = ort.InferenceSession(
                str(model_dir / ONNX_FILE), options, providers=["CPUExecutionProvider"]
            )
            self._input = self._session.get_inputs()[0].name
        else:
            self._model = load_skops(model_dir / SKOPS_FILE, signature.get("trusted_types", []) + (trusted or []))

    def _matrix(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """The ONNX input: one float row per request, features in declared order (bools as 0/1)."""
        return np.asarray([[float(r["features"][c]) for c in self.features] for r in rows], dtype=np.float32).reshape(
            len(rows), len(self.features)
        )

    def _onnx_outputs(self, rows: list[dict[str, Any]]) -> list[Any]:
        return self._session.run(None, {self._input: self._matrix(rows)})

    def predict_values(self, rows: list[dict[str, Any]]) -> np.ndarray:
        if self.task != "regression":
            raise TypeError(f"a {self.task} model answers predict_proba, not predict_values")
        if self.format == "onnx":
            first = next(o for o in self._onnx_outputs(rows) if isinstance(o, np.ndarray))
            return np.asarray(first, dtype=np.float64).reshape(len(rows))
        return np.asarray(self._model.predict(feature_frame(rows, self.features)), dtype=np.float64).reshape(-1)

    def predict_proba(self, rows: list[dict[str, Any]]) -> np.ndarray:
        if self.task == "regression":
            raise TypeError("a regression model answers predict_values, not predict_proba")
        if self.format == "onnx":
            return _onnx_probabilities(self._onnx_outputs(rows), self.labels, len(rows))
        frame = feature_frame(rows, self.features)
        classes = [str(c).lower() if isinstance(c, bool | np.bool_) else str(c) for c in self._model.classes_]
        if hasattr(self._model, "predict_proba"):
            scores = np.asarray(self._model.predict_proba(frame), dtype=np.float64)
        else:  # a classifier without probabilities: certain of what it predicts
            predicted = [str(p) for p in self._model.predict(frame)]
            scores = np.asarray([[1.0 if c == p else 0.0 for c in classes] for p in predicted])
        out = np.zeros((len(rows), len(self.labels)))
        for j, label in enumerate(classes):
            if label in self.labels:
                out[:, self.labels.index(label)] = scores[:, j]
        return out


def _onnx_probabilities(outputs: list[Any], labels: list[str], n: int) -> np.ndarray:
    """Class probabilities from an ONNX classifier's outputs: a (n, classes) float tensor (logits are turned
    into probabilities), or skl2onnx's list of {class: probability} maps."""
    for out in outputs:
        if isinstance(out, list) and out and isinstance(out[0], dict):
            return np.asarray([[float(m.get(lab, m.get(_maybe_int(lab), 0.0))) for lab in labels] for m in out])
        if isinstance(out, np.ndarray) and out.ndim == 2 and out.shape == (n, len(labels)) and out.dtype.kind == "f":
            scores = out.astype(np.float64)
            if (scores < 0).any() or not np.allclose(scores.sum(axis=1), 1.0, atol=1e-3):
                scores = np.exp(scores - scores.max(axis=1, keepdims=True))
                scores /= scores.sum(axis=1, keepdims=True)
            return scores
    shapes = [getattr(o, "shape", type(o).__name__) for o in outputs]
    raise ModelFileError(f"no output of the ONNX model holds {len(labels)} class scores per row (outputs: {shapes})")


def _maybe_int(label: str) -> Any:
    try:
        return int(label)
    except ValueError:
        return label


def write_signature(out_dir: Path, table: dict[str, Any], model_format: str, trusted: list[str]) -> None:
    signature = {
        "task": table["task"],
        "labels": table["labels"],
        "positive": table.get("positive"),
        "features": table["features"],
        "feature_columns": table["feature_columns"],
        "target": table["target"],
        "model_format": model_format,
        "trusted_types": sorted(trusted),
    }
    (out_dir / SIGNATURE_FILE).write_text(json.dumps(signature, indent=1, sort_keys=True))
