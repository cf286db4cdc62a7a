"""A scikit-learn classifier for tabular features, persisted as plain JSON parameters (never pickle).

A standardised multinomial logistic regression is a handful of numbers; storing them as JSON keeps the artifact
human-readable, byte-deterministic and loadable without trusting any code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from release_assets.manifest.params import TabularParams

MODEL_FILE = "model.json"


def train(
    train_rows: list[dict[str, Any]],
    params: TabularParams,
    out_dir: Path,
    val_rows: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``val_rows`` is accepted for a uniform trainer signature; the solver needs no early stopping."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = np.asarray([r["features"] for r in train_rows], dtype=np.float64)
    y = [r["label"] for r in train_rows]
    scaler = StandardScaler().fit(x)
    clf = LogisticRegression(C=params.C, max_iter=params.max_iter, random_state=params.seed)
    clf.fit(scaler.transform(x), y)
    payload = {
        "format": "release_assets.logistic_regression/v1",
        "classes": [str(c) for c in clf.classes_],
        "mean": scaler.mean_.tolist(),
        "scale": scaler.scale_.tolist(),
        "coef": clf.coef_.tolist(),
        "intercept": clf.intercept_.tolist(),
    }
    (out_dir / MODEL_FILE).write_text(json.dumps(payload, indent=1))
    return {"labels": payload["classes"], "format": "json", "params": params.model_dump()}


class TabularPredictor:
    def __init__(self, model_dir: Path) -> None:
        p = json.loads((model_dir / MODEL_FILE).read_text())
        self.labels: list[str] = p["classes"]
        self._mean = np.asarray(p["mean"])
        self._scale = np.asarray(p["scale"])
        self._coef = np.asarray(p["coef"])
        self._intercept = np.asarray(p["intercept"])

    def predict_proba(self, rows: list[dict[str, Any]]) -> np.ndarray:
        x = (np.asarray([r["features"] for r in rows], dtype=np.float64) - self._mean) / self._scale
        logits = x @ self._coef.T + self._intercept
        if logits.shape[1] == 1:  # two classes: scikit-learn keeps one row, the log-odds of classes[1]
            logits = np.hstack([np.zeros_like(logits), logits])
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)
