"""A small BERT-style intent classifier, trained from scratch (or fine-tuned from a local checkpoint).

The tokenizer is a ``tokenizers`` WordPiece model whose vocabulary is learned from the train split; the encoder is a
``transformers`` BERT config a few layers deep. Both are saved in the Hugging Face layout (``tokenizer.json``,
``config.json``, ``model.safetensors``), so the artifact loads with standard tooling and never unpickles; the
trained classifier is also exported to ``model.onnx``, which serving and evaluation run without torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from release_assets.manifest.params import TextParams
from release_assets.models.epochs import report_epoch
from release_assets.models.onnx_export import export_text
from release_assets.models.wordpiece import encode, train_tokenizer

TOKENIZER_FILE = "tokenizer.json"
LABELS_FILE = "labels.json"
# The confidence below which a chain should ask rather than act, chosen on the validation split at training time
# and frozen with the weights it was measured on (chains read it with `min_confidence: model`).
ABSTAIN_FILE = "abstain.json"


def _quiet_transformers() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging

    logging.disable_progress_bar()  # per-load progress bars are noise in run logs


def _encode(tokenizer, texts: list[str], max_length: int):
    import torch

    ids, mask = encode(tokenizer, texts, max_length)
    return torch.from_numpy(ids), torch.from_numpy(mask)


def _classifier_class():
    """BERT encoder + mean pooling over real tokens + linear head.

    With a few hundred sentences and no pre-training, the [CLS] vector learns little; averaging every token's
    state gives the head a bag-of-subwords signal from the first epoch, and attention refines it.
    """
    import torch
    from transformers import BertModel, BertPreTrainedModel
    from transformers.modeling_outputs import SequenceClassifierOutput

    class MeanPoolBertClassifier(BertPreTrainedModel):
        def __init__(self, config):
            super().__init__(config)
            self.bert = BertModel(config, add_pooling_layer=False)
            self.dropout = torch.nn.Dropout(config.hidden_dropout_prob)
            self.classifier = torch.nn.Linear(config.hidden_size, config.num_labels)
            self.post_init()

        def forward(self, input_ids=None, attention_mask=None, labels=None, **_):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            logits = self.classifier(self.dropout(pooled))
            loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
            return SequenceClassifierOutput(loss=loss, logits=logits)

    return MeanPoolBertClassifier


def choose_abstain_threshold(confidences: list[float], correct: list[bool], target: float) -> dict[str, Any]:
    """The lowest confidence at which the cases answered (confidence >= it) are at least ``target`` accurate.

    Lowest, so the chain answers as many cases as the target allows. The candidates are the observed confidences
    (0 when every case may be answered), so the choice is exact and the same on every run; equal confidences are
    never split. When no threshold reaches the target: 1.0 (answer only the certain), with ``reached: false``, so
    the report says so rather than hiding it. With no cases there is nothing to measure: ``threshold`` is None.
    """
    pairs = sorted(zip(confidences, correct, strict=True))
    n = len(pairs)
    right_from = [0] * (n + 1)  # right_from[i]: correct cases among pairs[i:], the ones answered at pairs[i][0]
    for i in range(n - 1, -1, -1):
        right_from[i] = right_from[i + 1] + bool(pairs[i][1])
    first = next(
        (i for i in range(n) if (i == 0 or pairs[i][0] > pairs[i - 1][0]) and right_from[i] / (n - i) >= target),
        None,
    )
    threshold: float | None
    if first is not None:
        threshold, answered, right = (0.0 if first == 0 else pairs[first][0]), n - first, right_from[first]
    else:
        threshold = 1.0 if n else None
        answered = sum(1 for c, _ in pairs if c >= 1.0)
        right = sum(bool(ok) for c, ok in pairs if c >= 1.0)
    return {
        "threshold": threshold,
        "target": target,
        "reached": first is not None,
        "cases": n,
        "answered": answered,
        "answered_accuracy": right / answered if answered else None,
        "accuracy": right_from[0] / n if n else None,
    }


def train(
    train_rows: list[dict[str, Any]],
    params: TextParams,
    out_dir: Path,
    val_rows: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train; with ``val_rows``, keep the epoch that scores best on them (ties go to the later epoch)."""
    _quiet_transformers()
    import torch
    from tokenizers import Tokenizer
    from transformers import BertConfig

    classifier = _classifier_class()
    torch.manual_seed(params.seed)
    texts = [r["text"] for r in train_rows]
    labels = sorted({r["label"] for r in train_rows})
    index = {label: i for i, label in enumerate(labels)}
    y = torch.tensor([index[r["label"]] for r in train_rows])

    if params.base_model:
        base = Path(params.base_model)
        tokenizer = Tokenizer.from_file(str(base / TOKENIZER_FILE))
        model = classifier.from_pretrained(base, num_labels=len(labels), ignore_mismatched_sizes=True)
    else:
        tokenizer = train_tokenizer(texts, params.vocab_size)
        config = BertConfig(
            vocab_size=tokenizer.get_vocab_size(),
            hidden_size=params.hidden,
            num_hidden_layers=params.layers,
            num_attention_heads=params.heads,
            intermediate_size=params.hidden * 4,
            max_position_embeddings=params.max_length,
            num_labels=len(labels),  # type: ignore[call-arg]  # transformers: a __post_init__ kwarg, not a field
            pad_token_id=tokenizer.token_to_id("[PAD]"),
            hidden_dropout_prob=params.dropout,
            attention_probs_dropout_prob=params.dropout,
        )
        model = classifier(config)
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = index

    ids, mask = _encode(tokenizer, texts, params.max_length)
    optimiser = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(params.seed)
    steps = params.epochs * ((len(texts) + params.batch_size - 1) // params.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=params.lr, total_steps=max(steps, 1))
    special = torch.tensor([tokenizer.token_to_id(t) for t in ("[PAD]", "[CLS]", "[SEP]")])
    mask_id = tokenizer.token_to_id("[MASK]")
    if val_rows:
        val_ids, val_mask = _encode(tokenizer, [r["text"] for r in val_rows], params.max_length)
        val_y = torch.tensor([index.get(r["label"], -1) for r in val_rows])
    best: tuple[float, dict[str, Any] | None, int]  # (val accuracy, weights, epoch) of the best epoch so far
    losses, val_scores, best = [], [], (-1.0, None, 0)
    for epoch in range(params.epochs):
        model.train()
        order = torch.randperm(len(texts), generator=generator)
        total = 0.0
        for start in range(0, len(texts), params.batch_size):
            batch = order[start : start + params.batch_size]
            batch_ids = ids[batch]
            if params.token_mask:
                noise = torch.rand(batch_ids.shape, generator=generator) < params.token_mask
                batch_ids = batch_ids.masked_fill(noise & ~torch.isin(batch_ids, special), mask_id)
            optimiser.zero_grad()
            out = model(input_ids=batch_ids, attention_mask=mask[batch], labels=y[batch])
            out.loss.backward()
            optimiser.step()
            schedule.step()
            total += float(out.loss.detach()) * len(batch)
        losses.append(round(total / len(texts), 5))
        report_epoch(epoch + 1, params.epochs, losses[-1])
        if val_rows:
            model.eval()
            with torch.inference_mode():
                score = float(
                    (model(input_ids=val_ids, attention_mask=val_mask).logits.argmax(1) == val_y).float().mean()
                )
            val_scores.append(round(score, 4))
            if score >= best[0]:
                best = (score, {k: v.detach().clone() for k, v in model.state_dict().items()}, epoch + 1)
    if best[1] is not None:
        model.load_state_dict(best[1])
    abstain: dict[str, Any] = {"threshold": None, "target": params.abstain_target, "reached": False, "cases": 0}
    if val_rows:
        # Val picked the epoch too, so its accuracy flatters the model a little; it is still data the weights never
        # trained on, which the test split (kept for the report) and the golden suite (the chain's) must not be.
        model.eval()
        with torch.inference_mode():
            proba = torch.softmax(model(input_ids=val_ids, attention_mask=val_mask).logits, dim=1)
        confidence, predicted = proba.max(1)
        abstain = choose_abstain_threshold(
            [float(c) for c in confidence], (predicted == val_y).tolist(), params.abstain_target
        )
    abstain["split"] = "val" if val_rows else None

    model.save_pretrained(out_dir, safe_serialization=True)
    # What serving and evaluation run (onnxruntime, no torch); the onnx_parity check compares it with the above.
    export_text(model, tokenizer, params.max_length, out_dir)
    (out_dir / ABSTAIN_FILE).write_text(json.dumps(abstain, indent=1, sort_keys=True))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    tokenizer.save(str(out_dir / TOKENIZER_FILE))
    (out_dir / LABELS_FILE).write_text(json.dumps({"labels": labels, "max_length": params.max_length}))
    return {
        "labels": labels,
        "format": "safetensors+onnx",
        "train_loss": losses,
        "val_accuracy": val_scores,
        "best_epoch": best[2] or params.epochs,
        "params": params.model_dump(),
        "abstain": abstain,
    }


class TextPredictor:
    def __init__(self, model_dir: Path) -> None:
        _quiet_transformers()
        import torch
        from tokenizers import Tokenizer

        meta = json.loads((model_dir / LABELS_FILE).read_text())
        self.labels: list[str] = meta["labels"]
        self._max_length = meta["max_length"]
        self._tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
        self._model = _classifier_class().from_pretrained(model_dir).eval()
        self._torch = torch
        # None for a model trained without a validation split (or before thresholds were recorded): never abstain.
        abstain = model_dir / ABSTAIN_FILE
        self.abstain_threshold: float | None = (
            json.loads(abstain.read_text()).get("threshold") if abstain.exists() else None
        )

    def _batches(self, rows: list[dict[str, Any]], batch_size: int):
        texts = [r["text"] for r in rows]
        with self._torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                ids, mask = _encode(self._tokenizer, texts[start : start + batch_size], self._max_length)
                yield self._model(input_ids=ids, attention_mask=mask).logits

    def logits(self, rows: list[dict[str, Any]], batch_size: int = 256) -> np.ndarray:
        out = [logits.numpy() for logits in self._batches(rows, batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), dtype=np.float32)

    def predict_proba(self, rows: list[dict[str, Any]], batch_size: int = 256) -> np.ndarray:
        out = [self._torch.softmax(logits, dim=1).numpy() for logits in self._batches(rows, batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)))
