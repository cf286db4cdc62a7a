"""A small torch CNN that reads 8x8 handwritten digits, saved as safetensors plus a JSON config, and exported to
ONNX (``model.onnx``) for serving."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from release_assets.manifest.params import VisionParams
from release_assets.models.epochs import report_epoch
from release_assets.models.onnx_export import export_vision

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def _net(channels: int, n_classes: int):
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, channels * 2, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(channels * 2 * 16, 64),
        nn.ReLU(),
        nn.Linear(64, n_classes),
    )


def pixel_array(pixels: list[list[int]]) -> np.ndarray:
    """The network's input, (n, 1, 8, 8) float32 in [0, 1]: shared by the torch and the onnxruntime predictor."""
    return np.asarray(pixels, dtype=np.float32).reshape(-1, 1, 8, 8) / np.float32(16.0)


def _tensor(pixels: list[list[int]]):
    import torch

    return torch.from_numpy(pixel_array(pixels))


def train(
    train_rows: list[dict[str, Any]],
    params: VisionParams,
    out_dir: Path,
    val_rows: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``val_rows`` is accepted for a uniform trainer signature; a fixed epoch count suffices here."""
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(params.seed)
    labels = sorted({r["label"] for r in train_rows})
    index = {label: i for i, label in enumerate(labels)}
    x = _tensor([r["pixels"] for r in train_rows])
    y = torch.tensor([index[r["label"]] for r in train_rows])
    net = _net(params.channels, len(labels))
    optimiser = torch.optim.Adam(net.parameters(), lr=params.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(params.seed)
    losses = []
    net.train()
    for epoch in range(params.epochs):
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), params.batch_size):
            batch = order[start : start + params.batch_size]
            optimiser.zero_grad()
            loss = loss_fn(net(x[batch]), y[batch])
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        losses.append(round(total / len(x), 5))
        report_epoch(epoch + 1, params.epochs, losses[-1])
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(out_dir / WEIGHTS_FILE))
    config = {"format": "release_assets.digit_cnn/v1", "labels": labels, "channels": params.channels}
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=1))
    export_vision(net, out_dir)  # what serving and evaluation run; the onnx_parity check compares the two
    return {"labels": labels, "format": "safetensors+onnx", "train_loss": losses, "params": params.model_dump()}


class VisionPredictor:
    def __init__(self, model_dir: Path) -> None:
        import torch
        from safetensors.torch import load_file

        config = json.loads((model_dir / CONFIG_FILE).read_text())
        self.labels: list[str] = config["labels"]
        self._net = _net(config["channels"], len(self.labels))
        self._net.load_state_dict(load_file(str(model_dir / WEIGHTS_FILE)))
        self._net.eval()
        self._torch = torch

    def logits(self, rows: list[dict[str, Any]]) -> np.ndarray:
        with self._torch.inference_mode():
            return self._net(_tensor([r["pixels"] for r in rows])).numpy()

    def predict_proba(self, rows: list[dict[str, Any]]) -> np.ndarray:
        with self._torch.inference_mode():
            logits = self._net(_tensor([r["pixels"] for r in rows]))
            return self._torch.softmax(logits, dim=1).numpy()
