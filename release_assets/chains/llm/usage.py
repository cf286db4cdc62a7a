"""Usage and cost accounting: tokens, real calls and cache hits per case, priced per step, summed per run."""

from __future__ import annotations

from collections.abc import Sequence

from release_assets.chains.llm.base import Completion
from release_assets.chains.schema import LLMSpec

USAGE_KEYS = ("tokens_in", "tokens_out", "llm_calls", "cache_hits")


def empty_usage() -> dict[str, float]:
    return {"tokens_in": 0, "tokens_out": 0, "llm_calls": 0, "cache_hits": 0, "latency_ms": 0.0}


def account(usage: dict[str, float], completion: Completion) -> None:
    """Add one answer; tokens and latency count the same whether it came from the model or the cache."""
    usage["tokens_in"] += completion.tokens_in
    usage["tokens_out"] += completion.tokens_out
    usage["latency_ms"] += completion.latency_ms
    usage["cache_hits" if completion.cache_hit else "llm_calls"] += 1


def add_cost(usage: dict[str, float], cfg: LLMSpec) -> None:
    """Price a case's tokens when the step declares ``price_per_1k``; otherwise leave cost out (unknown, not 0)."""
    if cfg.price_per_1k is not None:
        price = cfg.price_per_1k
        usage["cost_usd"] = usage["tokens_in"] / 1000 * price.input + usage["tokens_out"] / 1000 * price.output


def sum_usage(usages: Sequence[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {k: 0 for k in USAGE_KEYS}
    for usage in usages:
        for k in USAGE_KEYS:
            out[k] += usage.get(k, 0)
        if "cost_usd" in usage:
            out["cost_usd"] = out.get("cost_usd", 0.0) + usage["cost_usd"]
    return out
