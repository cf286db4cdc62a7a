"""Each trainer's hyper-parameters (a model member's ``params:``), as pydantic models: part of the manifest's
format, validated when a manifest loads so a typo fails before training; the trainers (``models/``) take them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TabularParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    C: float = 1.0
    max_iter: int = 500
    seed: int = 0


class VisionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: int = 8
    channels: int = 16
    lr: float = 3e-3
    batch_size: int = 64
    seed: int = 0


class TextParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    layers: int = 2
    hidden: int = 64
    heads: int = 2
    epochs: int = 12
    max_length: int = 64
    vocab_size: int = 2000
    lr: float = 1e-3
    batch_size: int = 32
    seed: int = 0
    dropout: float = 0.1
    token_mask: float = 0.0  # share of tokens replaced by [MASK] in each training batch (regularises small data)
    base_model: str | None = None  # a local checkpoint folder to fine-tune instead of training from scratch
    # Accuracy the answered validation cases must reach: the abstain threshold is the lowest confidence that does.
    abstain_target: float = Field(default=0.8, gt=0, le=1)


# By model kind (``manifest.MODEL_KINDS``); models/trainers.py names the same class for each trainer.
MODEL_PARAMS: dict[str, type[BaseModel]] = {
    "tabular_classifier": TabularParams,
    "image_classifier": VisionParams,
    "text_classifier": TextParams,
}
