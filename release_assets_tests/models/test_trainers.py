"""The three trainers on a few dozen rows, through the registry as the model assets call them.

Each kind is trained twice with the same seed (once per module): the loss falls, the two output folders are
byte-identical, the saved model loads and predicts a probability per label, and nothing is pickled.
"""

from __future__ import annotations

import hashlib
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.support.project import TINY_PARAMS
from release_assets.models.trainers import MODEL_KINDS

# Intent-sized texts over three intents; repeated so each of the few training steps sees every intent.
TEXTS = {
    "refund": ["I want a refund", "please refund my money", "refund my order now", "can I get my money back"],
    "order_status": ["where is my order", "has my parcel shipped", "when will my package arrive", "track my order"],
    "cancel_order": ["cancel my order", "please cancel the order", "I want to cancel", "stop my order please"],
}


def iris_rows() -> list[dict[str, Any]]:
    from sklearn.datasets import load_iris  # ships with scikit-learn: no download

    data = load_iris()
    picked = [i for c in range(3) for i in np.flatnonzero(data.target == c)[:12]]
    return [{"features": [float(v) for v in data.data[i]], "label": data.target_names[data.target[i]]} for i in picked]


def digit_rows() -> list[dict[str, Any]]:
    from sklearn.datasets import load_digits

    data = load_digits()
    picked = [i for c in range(3) for i in np.flatnonzero(data.target == c)[:12]]
    return [{"pixels": [int(v) for v in data.data[i]], "label": str(int(data.target[i]))} for i in picked]


def text_rows() -> list[dict[str, Any]]:
    return [{"text": t, "label": label} for label, texts in TEXTS.items() for t in texts] * 3


# TINY_PARAMS sizes; epochs raised just enough to give the loss history several points to fall along.
CASES = {
    "tabular_classifier": (iris_rows, {"seed": 3}),
    "image_classifier": (digit_rows, {**TINY_PARAMS["vision_model"], "epochs": 3, "batch_size": 12, "seed": 3}),
    "text_classifier": (text_rows, {**TINY_PARAMS["intent_model"], "epochs": 4, "batch_size": 8, "seed": 3}),
}


@dataclass
class Trained:
    kind: str
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    dirs: tuple[Path, Path]  # two runs, same seed


@pytest.fixture(scope="module", params=sorted(CASES))
def trained(request, tmp_path_factory) -> Trained:
    kind = request.param
    make_rows, raw_params = CASES[kind]
    rows = make_rows()
    model_kind = MODEL_KINDS[kind]
    summaries, dirs = [], []
    for run in ("a", "b"):
        out = tmp_path_factory.mktemp(f"{kind}-{run}")
        summaries.append(model_kind.train(rows, model_kind.parse_params(raw_params), out, None))
        dirs.append(out)
    assert summaries[0] == summaries[1]
    return Trained(kind, rows, summaries[0], (dirs[0], dirs[1]))


def digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def mean_log_loss(proba: np.ndarray, labels: list[str], rows: list[dict[str, Any]]) -> float:
    index = {label: i for i, label in enumerate(labels)}
    return float(-np.mean([math.log(proba[i, index[r["label"]]]) for i, r in enumerate(rows)]))


def test_training_loss_goes_down(trained):
    if trained.kind == "tabular_classifier":
        # The tabular trainer records no loss history (one lbfgs fit). What it exposes is the fitted model: its
        # train log-loss must be below log(3), the loss of the all-zero start (uniform over three classes), and
        # its train accuracy far above chance (1/3).
        predictor = MODEL_KINDS[trained.kind].load(trained.dirs[0])
        proba = predictor.predict_proba(trained.rows)
        assert mean_log_loss(proba, predictor.labels, trained.rows) < 0.5 * math.log(3)
        hits = [predictor.labels[j] == r["label"] for j, r in zip(proba.argmax(1), trained.rows, strict=True)]
        assert sum(hits) / len(hits) >= 0.9
    else:
        losses = trained.summary["train_loss"]
        assert len(losses) == CASES[trained.kind][1]["epochs"]
        assert losses[-1] < losses[0], losses


def test_same_seed_gives_byte_identical_files(trained):
    first, second = (digests(d) for d in trained.dirs)
    assert first, "the trainer wrote nothing"
    assert first == second


def test_saved_model_loads_and_predicts_probabilities(trained):
    predictor = MODEL_KINDS[trained.kind].load(trained.dirs[0])
    assert predictor.labels == sorted({r["label"] for r in trained.rows}) == trained.summary["labels"]
    proba = predictor.predict_proba(trained.rows[:5])
    assert proba.shape == (5, len(predictor.labels))
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


PICKLE_SUFFIXES = {".pkl", ".pickle", ".joblib", ".pt", ".pth", ".bin", ".ckpt"}
PICKLE_MAGIC = {bytes([0x80, n]) for n in range(2, 6)}  # PROTO opcode, protocols 2-5


def test_no_pickle_is_written(trained):
    files = [p for p in trained.dirs[0].rglob("*") if p.is_file()]
    for path in files:
        assert path.suffix not in PICKLE_SUFFIXES, path
        if path.suffix == ".safetensors":
            # Its first 8 bytes are a header length that could look like pickle magic: prove the format instead.
            from safetensors import safe_open

            with safe_open(str(path), framework="numpy") as fh:
                assert list(fh.keys())
            continue
        assert path.read_bytes()[:2] not in PICKLE_MAGIC, f"{path} is a pickle"
        if zipfile.is_zipfile(path):  # torch.save writes a zip holding data.pkl
            assert not any(n.endswith(".pkl") for n in zipfile.ZipFile(path).namelist()), path
        if path.suffix == ".onnx":  # a protobuf the onnx checker accepts, never a pickle
            import onnx

            onnx.checker.check_model(onnx.load(str(path)))
    # Every file is one of the formats the trainers document: JSON, safetensors, or ONNX (torch models only).
    assert {p.suffix for p in files} <= {".json", ".safetensors", ".onnx"}, sorted(p.name for p in files)
    assert any(p.suffix == ".onnx" for p in files) == (trained.kind != "tabular_classifier")
