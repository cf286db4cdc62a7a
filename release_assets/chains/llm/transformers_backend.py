"""The ``llm:transformers`` backend: generation with a local causal LM, loaded once per process, and the weights
fingerprint that enters its cache key.

torch and transformers are imported inside the functions that use them: an offline chain never loads them.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

from release_assets.chains.llm.base import BINDING_VERSIONS, Completion, LLMError
from release_assets.chains.schema import LLMSpec

# Process-wide: every evaluation run in a long-lived process reuses the loaded model and its fingerprint.
_MODELS: dict[str, tuple[Any, Any]] = {}
_FINGERPRINTS: dict[str, str] = {}
_MODELS_LOCK = threading.Lock()
FULL_HASH_LIMIT = 64 * 1024 * 1024


def resolve_model_path(path: str) -> str:
    """Absolute for a local folder (``~`` and ``$VARS`` expanded, relative to the working directory); any other
    string is left as a hub id, which loads from the local HF cache only when HF_HUB_OFFLINE is set."""
    expanded = Path(os.path.expandvars(os.path.expanduser(path)))
    return str(expanded.resolve()) if expanded.exists() else path


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def load_causal_lm(path: str) -> tuple[Any, Any]:
    """Model and tokenizer, loaded once per process per path: every evaluation run reuses them."""
    key = resolve_model_path(path)
    with _MODELS_LOCK:
        if key not in _MODELS:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            offline = _offline()
            try:
                tokenizer = AutoTokenizer.from_pretrained(key, local_files_only=offline)
                model = AutoModelForCausalLM.from_pretrained(key, local_files_only=offline)
            except OSError as exc:
                raise LLMError(f"llm.path: cannot load a causal LM from {key!r}: {exc}") from None
            model.eval()
            _MODELS[key] = (model, tokenizer)
        return _MODELS[key]


def model_fingerprint(path: str) -> str:
    """What the weights are, for the cache key: contents of small files, size plus head and tail of big ones."""
    key = resolve_model_path(path)
    with _MODELS_LOCK:
        if key not in _FINGERPRINTS:
            digest = hashlib.sha256()
            root = Path(key)
            files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
            for p in files:
                size = p.stat().st_size
                digest.update(f"{p.relative_to(root).as_posix()}:{size}\n".encode())
                with p.open("rb") as fh:
                    if size <= FULL_HASH_LIMIT:
                        digest.update(fh.read())
                    else:
                        digest.update(fh.read(1 << 20))
                        fh.seek(-(1 << 20), os.SEEK_END)
                        digest.update(fh.read())
            _FINGERPRINTS[key] = digest.hexdigest() if files else f"hub:{key}"
        return _FINGERPRINTS[key]


class TransformersBackend:
    """Greedy (or seeded sampling) generation with a local causal LM, one case at a time."""

    version = BINDING_VERSIONS["llm:transformers"]
    concurrency = 1  # one model, and generate already uses every core

    def __init__(self, cfg: LLMSpec, step_id: str) -> None:
        self.cfg, self.step_id = cfg, step_id
        self.path = resolve_model_path(cfg.path or "")

    def __repr__(self) -> str:
        return f"TransformersBackend(step={self.step_id!r}, path={self.path!r})"

    secret = None

    def params(self, schema: dict[str, Any], name: str) -> dict[str, Any]:
        out: dict[str, Any] = {"max_new_tokens": self.cfg.max_new_tokens, "do_sample": self.cfg.do_sample}
        if self.cfg.do_sample:
            out["temperature"] = self.cfg.temperature or 1.0
            out["seed"] = self.cfg.seed
        return out

    def cache_material(self, messages: list[dict[str, str]], params: dict[str, Any]) -> dict[str, Any]:
        return {
            "binding": self.version,
            "model": self.cfg.model or self.cfg.path,
            "weights": model_fingerprint(self.path),
            "params": params,
            "messages": messages,
        }

    def close(self) -> None:
        pass  # the model stays cached for the process

    def complete(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Completion:
        import torch

        model, tokenizer = load_causal_lm(self.path)
        prompt = _prompt_text(tokenizer, messages)
        inputs = tokenizer(prompt, return_tensors="pt")
        kwargs: dict[str, Any] = {"max_new_tokens": params["max_new_tokens"], "do_sample": params["do_sample"]}
        if params["do_sample"]:
            kwargs["temperature"] = params["temperature"]
            if params.get("seed") is not None:
                torch.manual_seed(params["seed"])
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is not None:
            kwargs["pad_token_id"] = pad
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(**inputs, **kwargs)
        latency_ms = (time.perf_counter() - t0) * 1000
        n_in = int(inputs["input_ids"].shape[1])
        new = out[0, n_in:]
        return Completion(
            text=tokenizer.decode(new, skip_special_tokens=True),
            tokens_in=n_in,
            tokens_out=int(new.shape[0]),
            latency_ms=latency_ms,
        )


def _prompt_text(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\n\nassistant:"
