"""The contract between the step driver and a backend: the ``Backend`` protocol, the ``Completion`` it returns,
the two errors a call can raise, and the binding versions that enter every cache key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

# Part of every cache key: bump when a change in a backend would change what a cached answer means.
BINDING_VERSIONS = {"llm:openai": "llm-openai/1", "llm:transformers": "llm-transformers/1"}


class LLMError(RuntimeError):
    """A configuration problem that stops the whole run (e.g. the API key variable is not set)."""


class LLMCallError(RuntimeError):
    """One call that failed for good (non-retryable status, or retries exhausted); recorded on the case."""


@dataclass
class Completion:
    text: str
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0  # the model's own latency; a cache hit reports the original call's
    cache_hit: bool = False


class Backend(Protocol):
    version: str
    concurrency: int

    def params(self, schema: dict[str, Any], name: str) -> dict[str, Any]: ...
    def cache_material(self, messages: list[dict[str, str]], params: dict[str, Any]) -> dict[str, Any]: ...
    def complete(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Completion: ...
    def close(self) -> None: ...
