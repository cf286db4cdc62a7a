"""LLM bindings for chain steps: an OpenAI-compatible chat-completions endpoint or a local transformers causal LM.

A step bound to ``llm:openai`` or ``llm:transformers`` renders its template into a prompt, asks the model for a
JSON object matching the step's output schema, validates the answer with the pydantic model ``load_chain``
compiled, and on a validation failure asks again with the error in a follow-up message. Every call can be
answered from a file cache keyed by what determines the answer, so re-evaluating an unchanged chain is free and
gives identical results. Every call is traced, with configured fields redacted; the API key never leaves the
request headers.

Heavy imports (httpx, torch, transformers) stay inside functions: an offline chain never pays for them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from release_assets.chains.spec import REDACT_PATTERNS, LLMSpec, StepSpec

log = logging.getLogger(__name__)

# Part of every cache key: bump when a change here would change what a cached answer means.
BINDING_VERSIONS = {"llm:openai": "llm-openai/1", "llm:transformers": "llm-transformers/1"}
CACHE_ENV = "RELEASE_ASSETS_LLM_CACHE"
REDACTED = "[REDACTED]"
RETRY_STATUS = {408, 409, 425, 429}  # plus every 5xx
MAX_BACKOFF_S = 60.0
USAGE_KEYS = ("tokens_in", "tokens_out", "llm_calls", "cache_hits")


class LLMError(RuntimeError):
    """A configuration problem that stops the whole run (e.g. the API key variable is not set)."""


class LLMCallError(RuntimeError):
    """One call that failed for good (non-retryable status, or retries exhausted); recorded on the case."""


class _Secret:
    """Holds the API key so that no repr, str or traceback frame shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def scrub(self, text: str) -> str:
        return text.replace(self._value, REDACTED) if self._value else text

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


@dataclass
class Completion:
    text: str
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0  # the model's own latency; a cache hit reports the original call's
    cache_hit: bool = False


@dataclass
class StepOutcome:
    """One case's result for one LLM step: a validated value or an error, plus accounting and traces."""

    value: dict[str, Any] | None = None
    error: str | None = None
    usage: dict[str, float] = field(default_factory=dict)
    traces: list[dict[str, Any]] = field(default_factory=list)


class Backend(Protocol):
    version: str
    concurrency: int

    def params(self, schema: dict[str, Any], name: str) -> dict[str, Any]: ...
    def cache_material(self, messages: list[dict[str, str]], params: dict[str, Any]) -> dict[str, Any]: ...
    def complete(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Completion: ...
    def close(self) -> None: ...


# --------------------------------------------------------------------------------------------------- cache


def cache_enabled(cfg: LLMSpec) -> bool:
    return cfg.cache and os.environ.get(CACHE_ENV, "on").strip().lower() not in {"off", "0", "false", "no"}


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


# ------------------------------------------------------------------------------------------ output parsing


def extract_json(text: str) -> Any:
    """The answer as JSON, else the first JSON object inside it (models like to wrap JSON in prose or fences)."""
    try:
        return json.loads(text.strip())
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def short_error(exc: ValidationError) -> str:
    return "; ".join(".".join(str(p) for p in e["loc"]) + f": {e['msg']}" for e in exc.errors())


def parse_answer(text: str, schema: type[BaseModel]) -> tuple[dict[str, Any] | None, Any, str | None]:
    """Return (validated value, parsed JSON, error)."""
    parsed = extract_json(text)
    if not isinstance(parsed, dict):
        return None, parsed, "the answer is not a JSON object"
    try:
        return schema.model_validate(parsed).model_dump(), parsed, None
    except ValidationError as exc:
        return None, parsed, short_error(exc)


def repair_message(error: str, schema: dict[str, Any]) -> str:
    return (
        f"Your answer did not match the required format: {error}. Reply again with only one JSON object that "
        f"matches this JSON schema, and nothing else:\n{json.dumps(schema, sort_keys=True)}"
    )


# ----------------------------------------------------------------------------------------------- redaction


class Redactor:
    """Traces keep prompts and answers for debugging, minus what ``redact:`` names: the values of those output
    fields, and anything the field's pattern (the step's own ``patterns:`` or a built-in one) matches."""

    def __init__(self, step: StepSpec, secret: _Secret | None = None) -> None:
        names = step.llm.redact if step.llm else []
        self.fields = {n for n in names if n in step.output}
        self.patterns = [
            re.compile(step.patterns.get(n) or REDACT_PATTERNS[n])
            for n in names
            if n in step.patterns or n in REDACT_PATTERNS
        ]
        self.secret = secret

    def text(self, text: str, values: Sequence[Any] = ()) -> str:
        if self.secret is not None:
            text = self.secret.scrub(text)
        for pattern in self.patterns:
            text = pattern.sub(REDACTED, text)
        for value in values:
            if value not in (None, "") and str(value) in text:
                text = text.replace(str(value), REDACTED)
        return text

    def values(self, parsed: Any) -> list[Any]:
        return [parsed.get(f) for f in self.fields] if isinstance(parsed, dict) else []

    def output(self, parsed: Any) -> Any:
        if not isinstance(parsed, dict):
            return parsed
        return {k: (REDACTED if k in self.fields and v is not None else v) for k, v in parsed.items()}


# ------------------------------------------------------------------------------------- OpenAI-compatible


def _read_key(env_name: str) -> _Secret:
    value = os.environ.get(env_name)
    if not value:
        raise LLMError(f"llm.api_key_env: environment variable {env_name} is not set (it must hold the API key)")
    return _Secret(value)


class OpenAIBackend:
    """Chat completions over HTTP with retries on 429/5xx/timeouts (exponential backoff with jitter)."""

    version = BINDING_VERSIONS["llm:openai"]

    def __init__(self, cfg: LLMSpec, step_id: str) -> None:
        self.cfg, self.step_id = cfg, step_id
        self.concurrency = cfg.concurrency
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        self._key = _read_key(cfg.api_key_env) if cfg.api_key_env else None
        self._response_format = cfg.response_format
        self._client: Any = None
        self._lock = threading.Lock()
        self._rng = random.Random()  # jitter only; never touches answers

    def __repr__(self) -> str:
        return f"OpenAIBackend(step={self.step_id!r}, model={self.cfg.model!r}, base_url={self.cfg.base_url!r})"

    @property
    def secret(self) -> _Secret | None:
        return self._key

    def params(self, schema: dict[str, Any], name: str) -> dict[str, Any]:
        cfg = self.cfg
        out: dict[str, Any] = {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens}
        if cfg.seed is not None:
            out["seed"] = cfg.seed
        if cfg.response_format == "json_schema":
            out["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": False},
            }
        elif cfg.response_format == "json_object":
            out["response_format"] = {"type": "json_object"}
        return out

    def cache_material(self, messages: list[dict[str, str]], params: dict[str, Any]) -> dict[str, Any]:
        # base_url is left out on purpose: the same model behind another host gives the same answer.
        return {"binding": self.version, "model": self.cfg.model, "params": params, "messages": messages}

    def _http(self) -> Any:
        import httpx

        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=httpx.Timeout(self.cfg.timeout_s),
                    limits=httpx.Limits(max_connections=self.cfg.concurrency),
                )
            return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _headers(self) -> dict[str, str]:
        # Built per request and never bound to a local, so no traceback frame or log record holds the key.
        headers = {"Content-Type": "application/json"}
        if self._key is not None:
            headers["Authorization"] = f"Bearer {self._key.reveal()}"
        return headers

    def _scrub(self, text: str) -> str:
        return self._key.scrub(text) if self._key else text

    def complete(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Completion:
        import httpx

        client = self._http()
        body = {"model": self.cfg.model, "messages": messages, **params}
        if self._response_format == "none":
            body.pop("response_format", None)
        attempts = self.cfg.max_retries + 1
        attempt = 0
        while True:
            retry_after = None
            t0 = time.perf_counter()
            try:
                resp = client.post(self.url, json=body, headers=self._headers())
            except httpx.TimeoutException:
                problem = f"timeout after {self.cfg.timeout_s:g}s"
            except httpx.TransportError as exc:
                problem = f"connection error ({type(exc).__name__})"
            else:
                latency_ms = (time.perf_counter() - t0) * 1000
                if resp.status_code == 200:
                    return self._completion(resp, latency_ms)
                snippet = self._scrub(resp.text[:300])
                if resp.status_code == 400 and "response_format" in body and "response_format" in resp.text:
                    # An endpoint without structured output: ask again without it; the answer is still parsed
                    # and validated, and the cache key keeps what the chain asked for.
                    log.warning("llm %s: endpoint refused response_format; continuing without it", self.step_id)
                    self._response_format = "none"
                    body.pop("response_format")
                    continue
                if resp.status_code not in RETRY_STATUS and resp.status_code < 500:
                    raise LLMCallError(f"HTTP {resp.status_code} from {self.url}: {snippet}")
                problem = f"HTTP {resp.status_code}"
                retry_after = _retry_after(resp.headers.get("retry-after"))
            attempt += 1
            if attempt >= attempts:
                raise LLMCallError(f"{problem} from {self.url}; gave up after {attempts} attempt(s)")
            delay = min(MAX_BACKOFF_S, self.cfg.backoff_s * 2 ** (attempt - 1))
            delay *= 0.5 + self._rng.random()  # jitter: parallel cases must not retry in lockstep
            if retry_after is not None:
                delay = max(delay, min(retry_after, MAX_BACKOFF_S))
            log.warning("llm %s: %s; retry %d/%d in %.2fs", self.step_id, problem, attempt, attempts - 1, delay)
            time.sleep(delay)

    def _completion(self, resp: Any, latency_ms: float) -> Completion:
        try:
            data = resp.json()
            message = data["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise LLMCallError(f"{self.url} answered 200 without a chat completion: {resp.text[:200]!r}") from None
        usage = data.get("usage") or {}
        return Completion(
            text=message.get("content") or "",
            tokens_in=int(usage.get("prompt_tokens") or 0),
            tokens_out=int(usage.get("completion_tokens") or 0),
            latency_ms=latency_ms,
        )


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


# ------------------------------------------------------------------------------------------- transformers

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


# ------------------------------------------------------------------------------------------------ driver


def make_backend(step: StepSpec) -> Backend:
    assert step.llm is not None, f"step {step.id} has no llm: config"
    if step.binding == "llm:openai":
        return OpenAIBackend(step.llm, step.id)
    if step.binding == "llm:transformers":
        return TransformersBackend(step.llm, step.id)
    raise LLMError(f"step {step.id}: binding {step.binding!r} is not an LLM binding")


def empty_usage() -> dict[str, float]:
    return {"tokens_in": 0, "tokens_out": 0, "llm_calls": 0, "cache_hits": 0, "latency_ms": 0.0}


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
    error = "no answer"
    for attempt in range(attempts):
        params = backend.params(schema_json, step.id)
        t0 = time.perf_counter()
        try:
            completion = _complete(backend, cache, messages, params)
        except LLMCallError as exc:
            outcome.error = redactor.text(f"llm: {exc}")
            outcome.traces.append(_trace(step, case_id, attempt, messages, redactor, error=outcome.error))
            break
        _account(outcome.usage, completion)
        value, parsed, error = parse_answer(completion.text, schema)
        outcome.traces.append(
            _trace(
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
        messages = [
            *messages,
            {"role": "assistant", "content": completion.text},
            {"role": "user", "content": repair_message(error, schema_json)},
        ]
    else:
        outcome.error = f"schema: {error} (after {attempts} attempt(s))"
    if cfg.price_per_1k is not None:
        price = cfg.price_per_1k
        outcome.usage["cost_usd"] = (
            outcome.usage["tokens_in"] / 1000 * price.input + outcome.usage["tokens_out"] / 1000 * price.output
        )
    return outcome


def _complete(
    backend: Backend, cache: ResponseCache | None, messages: list[dict[str, str]], params: dict[str, Any]
) -> Completion:
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


def _account(usage: dict[str, float], completion: Completion) -> None:
    usage["tokens_in"] += completion.tokens_in
    usage["tokens_out"] += completion.tokens_out
    usage["latency_ms"] += completion.latency_ms
    usage["cache_hits" if completion.cache_hit else "llm_calls"] += 1


def _trace(
    step: StepSpec,
    case_id: str,
    attempt: int,
    messages: list[dict[str, str]],
    redactor: Redactor,
    completion: Completion | None = None,
    parsed: Any = None,
    error: str | None = None,
    wall_ms: float | None = None,
) -> dict[str, Any]:
    values = redactor.values(parsed)
    cfg = step.llm
    return {
        "case": case_id,
        "step": step.id,
        "binding": step.binding,
        "model": (cfg.model or cfg.path) if cfg else None,
        "attempt": attempt,
        "messages": [{"role": m["role"], "content": redactor.text(m["content"], values)} for m in messages],
        "raw": redactor.text(completion.text, values) if completion else None,
        "parsed": redactor.output(parsed),
        "error": redactor.text(error, values) if error else None,
        "latency_ms": completion.latency_ms if completion else None,
        "wall_ms": wall_ms,
        "tokens_in": completion.tokens_in if completion else 0,
        "tokens_out": completion.tokens_out if completion else 0,
        "cache_hit": completion.cache_hit if completion else False,
    }


def sum_usage(usages: Sequence[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {k: 0 for k in USAGE_KEYS}
    for usage in usages:
        for k in USAGE_KEYS:
            out[k] += usage.get(k, 0)
        if "cost_usd" in usage:
            out["cost_usd"] = out.get("cost_usd", 0.0) + usage["cost_usd"]
    return out
