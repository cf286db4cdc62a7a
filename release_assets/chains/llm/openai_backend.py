"""The ``llm:openai`` backend: chat completions from an OpenAI-compatible HTTP endpoint, with retries on
429/5xx/timeouts (exponential backoff with jitter, never sooner than the server's ``Retry-After``, in seconds or as
an HTTP-date, capped at :data:`MAX_BACKOFF_S`) and the API key kept out of everything but request headers.

httpx is imported inside the methods that use it: an offline chain never loads it.
"""

from __future__ import annotations

import email.utils
import logging
import math
import os
import random
import threading
import time
from datetime import UTC
from typing import Any

from release_assets.chains.llm.base import BINDING_VERSIONS, Completion, LLMCallError, LLMError
from release_assets.chains.llm.traces import _Secret
from release_assets.chains.schema import LLMSpec

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 425, 429}  # plus every 5xx
MAX_BACKOFF_S = 60.0  # the longest wait before a retry, whatever the backoff or the server's Retry-After says


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
        assert cfg.base_url is not None, "spec_checks requires base_url for llm:openai"
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
            delay = self.cfg.backoff_s * 2 ** (attempt - 1)
            delay *= 0.5 + self._rng.random()  # jitter: parallel cases must not retry in lockstep
            asked = ""
            if retry_after is not None and retry_after > delay:  # never sooner than the server asked
                delay, asked = retry_after, f" (Retry-After: {retry_after:.2f}s)"
            delay = min(delay, MAX_BACKOFF_S)
            log.warning(
                "llm %s: %s; retry %d/%d in %.2fs%s", self.step_id, problem, attempt, attempts - 1, delay, asked
            )
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


def _retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for: delay-seconds (``"2"``) or an HTTP-date (``"Wed, 21 Oct 2026
    07:28:00 GMT"``, counted from ``now``, default the clock), never negative; None when absent or unreadable (our
    own backoff then decides). The caller caps it."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # the obsolete RFC 850 and asctime forms carry no zone: HTTP-dates are GMT
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None
