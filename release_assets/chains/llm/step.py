"""Running one LLM step over a batch of cases: pick the backend the step's binding names, ask for every prompt
(``concurrency`` at a time), validate each answer and ask again with the error, and collect usage and traces."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from release_assets.chains.llm.base import Backend, LLMCallError, LLMError
from release_assets.chains.llm.cache import ResponseCache, cache_enabled, cached_complete
from release_assets.chains.llm.openai_backend import OpenAIBackend
from release_assets.chains.llm.parsing import parse_answer, repair_message
from release_assets.chains.llm.traces import Redactor, trace
from release_assets.chains.llm.transformers_backend import TransformersBackend
from release_assets.chains.llm.usage import account, add_cost, empty_usage
from release_assets.chains.schema import StepSpec


@dataclass
class StepOutcome:
    """One case's result for one LLM step: a validated value or an error, plus accounting and traces."""

    value: dict[str, Any] | None = None
    error: str | None = None
    usage: dict[str, float] = field(default_factory=dict)
    traces: list[dict[str, Any]] = field(default_factory=list)


def make_backend(step: StepSpec) -> Backend:
    assert step.llm is not None, f"step {step.id} has no llm: config"
    if step.binding == "llm:openai":
        return OpenAIBackend(step.llm, step.id)
    if step.binding == "llm:transformers":
        return TransformersBackend(step.llm, step.id)
    raise LLMError(f"step {step.id}: binding {step.binding!r} is not an LLM binding")


def run_llm_step(
    step: StepSpec,
    schema: type[BaseModel],
    prompts: Sequence[str],
    case_ids: Sequence[str],
    cache_dir: Path | None = None,
    backend: Backend | None = None,
) -> list[StepOutcome]:
    """Ask the step's model for every prompt (``concurrency`` at a time); one outcome per prompt, in order.

    ``tokens_*`` and ``latency_ms`` describe what the chain consumes, so they are the same whether an answer came
    from the model or the cache; ``llm_calls`` counts real requests and ``cache_hits`` the answers replayed.
    """
    cfg = step.llm
    assert cfg is not None, f"step {step.id} has no llm: config"
    backend = backend or make_backend(step)
    cache = ResponseCache(cache_dir) if cache_dir is not None and cache_enabled(cfg) else None
    schema_json = schema.model_json_schema()
    redactor = Redactor(step, getattr(backend, "secret", None))

    def one(prompt: str, case_id: str) -> StepOutcome:
        return _run_case(step, schema, schema_json, backend, cache, redactor, prompt, case_id)

    try:
        workers = max(1, min(backend.concurrency, len(prompts)))
        if workers == 1:
            return [one(p, c) for p, c in zip(prompts, case_ids, strict=True)]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"llm-{step.id}") as pool:
            return list(pool.map(one, prompts, case_ids))
    finally:
        backend.close()


def _run_case(
    step: StepSpec,
    schema: type[BaseModel],
    schema_json: dict[str, Any],
    backend: Backend,
    cache: ResponseCache | None,
    redactor: Redactor,
    prompt: str,
    case_id: str,
) -> StepOutcome:
    cfg = step.llm
    assert cfg is not None
    outcome = StepOutcome(usage=empty_usage())
    messages = [{"role": "user", "content": prompt}]
    attempts = cfg.schema_retries + 1
    error: str | None = "no answer"
    for attempt in range(attempts):
        params = backend.params(schema_json, step.id)
        t0 = time.perf_counter()
        try:
            completion = cached_complete(backend, cache, messages, params)
        except LLMCallError as exc:
            outcome.error = redactor.text(f"llm: {exc}")
            outcome.traces.append(trace(step, case_id, attempt, messages, redactor, error=outcome.error))
            break
        account(outcome.usage, completion)
        value, parsed, error = parse_answer(completion.text, schema)
        outcome.traces.append(
            trace(
                step,
                case_id,
                attempt,
                messages,
                redactor,
                completion=completion,
                parsed=parsed,
                error=error,
                wall_ms=(time.perf_counter() - t0) * 1000,
            )
        )
        if error is None:
            outcome.value = value
            break
        # Show the model its own answer and what was wrong with it: a repair, not a fresh guess.
        messages = [
            *messages,
            {"role": "assistant", "content": completion.text},
            {"role": "user", "content": repair_message(error, schema_json)},
        ]
    else:
        outcome.error = f"schema: {error} (after {attempts} attempt(s))"
    add_cost(outcome.usage, cfg)
    return outcome
