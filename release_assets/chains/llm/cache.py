"""The response cache: one file per answer, keyed by everything that determines it, so re-evaluating an unchanged
chain asks no model and gives identical results."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from release_assets.chains.llm.base import Backend, Completion
from release_assets.chains.schema import LLMSpec
from release_assets.core.settings import Settings

CACHE_ENV = "RELEASE_ASSETS_LLM_CACHE"  # Settings.llm_cache


def cache_enabled(cfg: LLMSpec) -> bool:
    """The step's ``cache:`` and RELEASE_ASSETS_LLM_CACHE, read afresh at each step (never cached for the process)."""

    return cfg.cache and Settings().llm_cache


class ResponseCache:
    """One JSON file per answer, named by the sha256 of what determines it; written atomically, so concurrent
    writers and interrupted runs never leave a half-written entry behind."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @staticmethod
    def key(material: dict[str, Any]) -> str:
        canonical = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            entry = json.loads((self.directory / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # missing or unreadable: ask the model again and overwrite
        return entry if isinstance(entry, dict) and isinstance(entry.get("text"), str) else None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(entry, fh, sort_keys=True, ensure_ascii=False)
            os.replace(tmp, self.directory / f"{key}.json")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def cached_complete(
    backend: Backend, cache: ResponseCache | None, messages: list[dict[str, str]], params: dict[str, Any]
) -> Completion:
    """The backend's answer, replayed from the cache when an identical request was answered before."""
    if cache is None:
        return backend.complete(messages, params)
    key = ResponseCache.key(backend.cache_material(messages, params))
    hit = cache.get(key)
    if hit is not None:
        return Completion(
            text=hit["text"],
            tokens_in=int(hit.get("tokens_in", 0)),
            tokens_out=int(hit.get("tokens_out", 0)),
            latency_ms=float(hit.get("latency_ms", 0.0)),
            cache_hit=True,
        )
    completion = backend.complete(messages, params)
    cache.put(
        key,
        {
            "binding": backend.version,
            "text": completion.text,
            "tokens_in": completion.tokens_in,
            "tokens_out": completion.tokens_out,
            "latency_ms": completion.latency_ms,
        },
    )
    return completion
