"""The torch models as served: their ``model.onnx`` run by onnxruntime, inputs made with numpy and ``tokenizers``.

Nothing here imports torch or transformers, so a server (and the chain evaluation) loads in a fraction of the
time and memory. The predictors answer exactly like the torch ones (``language.TextPredictor``,
``vision.VisionPredictor``): same labels, same preprocessing, softmax over the same logits; the onnx_parity check
holds a model whose ONNX logits differ from torch's by more than 1e-5 on its test split.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from release_assets.models.language import ABSTAIN_FILE, LABELS_FILE, TOKENIZER_FILE
from release_assets.models.onnx_export import ONNX_FILE, OUTPUT
from release_assets.models.vision import CONFIG_FILE, pixel_array
from release_assets.models.wordpiece import encode


def session(path: Path):
    """One onnxruntime session, set for single requests on a shared machine.

    One intra-op thread and sequential execution: the server already runs requests concurrently in its
    threadpool, and a per-request pool on two cores turns into tail latency (as torch is pinned to one thread).
    The thread pool spin-wait is off so an idle server does not burn a core between requests. Measured on the
    full-size intent model, one message at a time (service latency, on a busy machine): p50 0.9-1.2 ms with these
    options, 1.6 ms with onnxruntime's defaults (a thread per core, spinning); outputs were identical run to run
    either way.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # warnings about unused initialisers are noise in server logs
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class OnnxTextPredictor:
    """The intent model through onnxruntime; ``tokenizer.json`` read with ``tokenizers`` alone."""

    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        meta = json.loads((model_dir / LABELS_FILE).read_text())
        self.labels: list[str] = meta["labels"]
        self._max_length = meta["max_length"]
        self._tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
        self._session = session(model_dir / ONNX_FILE)
        abstain = model_dir / ABSTAIN_FILE
        self.abstain_threshold: float | None = (
            json.loads(abstain.read_text()).get("threshold") if abstain.exists() else None
        )

    def logits(self, rows: list[dict[str, Any]], batch_size: int = 256) -> np.ndarray:
        texts = [r["text"] for r in rows]
        out = []
        for start in range(0, len(texts), batch_size):
            ids, mask = encode(self._tokenizer, texts[start : start + batch_size], self._max_length)
            out.append(self._session.run([OUTPUT], {"input_ids": ids, "attention_mask": mask})[0])
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), dtype=np.float32)

    def predict_proba(self, rows: list[dict[str, Any]], batch_size: int = 256) -> np.ndarray:
        return softmax(self.logits(rows, batch_size))


class OnnxVisionPredictor:
    """The digit CNN through onnxruntime."""

    def __init__(self, model_dir: Path) -> None:
        self.labels: list[str] = json.loads((model_dir / CONFIG_FILE).read_text())["labels"]
        self._session = session(model_dir / ONNX_FILE)

    def logits(self, rows: list[dict[str, Any]]) -> np.ndarray:
        if not rows:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self._session.run([OUTPUT], {"pixels": pixel_array([r["pixels"] for r in rows])})[0]

    def predict_proba(self, rows: list[dict[str, Any]]) -> np.ndarray:
        return softmax(self.logits(rows))
