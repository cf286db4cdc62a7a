"""LLM bindings for chain steps: an OpenAI-compatible chat-completions endpoint or a local transformers causal LM.

A step bound to ``llm:openai`` or ``llm:transformers`` renders its template into a prompt, asks the model for a
JSON object matching the step's output schema, validates the answer with the pydantic model ``load_chain``
compiled, and on a validation failure asks again with the error in a follow-up message. Every call can be
answered from a file cache keyed by what determines the answer, so re-evaluating an unchanged chain is free and
gives identical results. Every call is traced, with configured fields redacted; the API key never leaves the
request headers.

One module per concern:

- ``base``: the backend protocol, ``Completion``, errors, binding versions (part of every cache key);
- ``openai_backend`` / ``transformers_backend``: the two backends;
- ``parsing``: JSON extraction, schema validation, the repair message;
- ``cache``: the response cache;
- ``traces``: traces and redaction (output fields, patterns, the API key);
- ``usage``: tokens, calls, cache hits and cost;
- ``step``: ``run_llm_step``, which drives the others for a batch of cases.

Heavy imports (httpx, torch, transformers) stay inside functions: an offline chain never pays for them.

This package re-exports what callers import. Every submodule is imported here by name so that a code version
over ``release_assets.chains.llm`` that follows imports covers all of them.
"""

from release_assets.chains.llm.base import LLMError
from release_assets.chains.llm.cache import CACHE_ENV, ResponseCache
from release_assets.chains.llm.openai_backend import OpenAIBackend
from release_assets.chains.llm.parsing import extract_json
from release_assets.chains.llm.step import StepOutcome, make_backend, run_llm_step
from release_assets.chains.llm.traces import Redactor
from release_assets.chains.llm.transformers_backend import _MODELS, TransformersBackend, load_causal_lm
from release_assets.chains.llm.usage import sum_usage

__all__ = [
    "CACHE_ENV",
    "_MODELS",
    "LLMError",
    "OpenAIBackend",
    "Redactor",
    "ResponseCache",
    "StepOutcome",
    "TransformersBackend",
    "extract_json",
    "load_causal_lm",
    "make_backend",
    "run_llm_step",
    "sum_usage",
]
