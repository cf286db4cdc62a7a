"""The Starlette app ``release-assets serve`` runs: predict, health, readiness and metrics.

Bad input never becomes a 5xx: every check a client can fail is answered 4xx before the model runs, and only an
exception from inside ``predict`` (a failing step) is a 500, counted and logged while the process keeps serving.
Routing is decided only by the flag router the process was started with: there is no admin endpoint.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from release_assets.serving.metrics import CONTENT_TYPE, ServingMetrics, schema_failures
from release_assets.serving.requests import RequestError

if TYPE_CHECKING:
    from release_assets.serving.breaker import Breakers
    from release_assets.serving.loader import LoadedRelease

log = logging.getLogger(__name__)

REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
LOAD_RETRY_S = 60.0  # a version that failed to load is retried after this, not on every request
NONE = "none"  # the variant/version label of a request refused before routing chose one


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    # default=str: a readiness detail may hold paths or exceptions; it must still render.
    content = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=str)
    return Response(content.encode(), status_code=status, headers=headers, media_type="application/json")


def _request_id(given: str | None) -> str:
    # The id lands in logs and headers: anything but a short plain token is replaced, never echoed.
    return (
        given if given is not None and REQUEST_ID.fullmatch(given) else str(uuid.uuid4())
    )  # hyphenated: the trace redactor masks bare 32-hex tokens as secrets


def _authorized(header: str | None, token: bytes) -> bool:
    scheme, _, given = (header or "").partition(" ")
    # Starlette decodes headers as latin-1: re-encoding gives back the exact bytes the client sent.
    given_bytes = given.strip().encode("latin-1", errors="replace")
    return hmac.compare_digest(given_bytes, token) and scheme.lower() == "bearer"


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")  # json.loads would otherwise accept NaN and Infinity


class _Refused(Exception):
    def __init__(self, status: int, error: str, field: str | None = None) -> None:
        super().__init__(error)
        self.status, self.body = status, {"error": error, **({"field": field} if field else {})}


async def _read_json(request: Request, limit: int) -> tuple[bytes, Any]:
    """The raw body and its JSON, or ``_Refused`` (415/413/400); past ``limit`` the body is never read further."""
    media, *params = (request.headers.get("content-type") or "").split(";")
    charsets = [p.split("=", 1)[1].strip().strip('"').lower() for p in params if p.strip().startswith("charset=")]
    if media.strip().lower() != "application/json" or any(c not in ("utf-8", "utf8") for c in charsets):
        raise _Refused(415, "expected Content-Type: application/json (UTF-8)")
    declared = request.headers.get("content-length")
    if declared is not None and not (declared.isascii() and declared.isdigit()):
        raise _Refused(400, "invalid Content-Length")
    if declared is not None and int(declared) > limit:
        raise _Refused(413, f"body larger than {limit} bytes")  # refused before reading a byte of it
    chunks, size = [], 0
    try:
        # Counted as it arrives: a chunked body, or one longer than its Content-Length, stops at the limit too.
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _Refused(413, f"body larger than {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise _Refused(400, "client disconnected while sending the body") from None
    raw = b"".join(chunks)
    try:
        return raw, json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise _Refused(400, "body is not valid UTF-8", "<body>") from None
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise _Refused(400, "body is not valid JSON", "<body>") from None


class _Versions:
    """The champions given at start, plus versions the router names, each loaded at most once and off the loop."""

    def __init__(self, champions: dict[str, LoadedRelease], loader: Callable[[str, str], LoadedRelease] | None):
        self.champions, self.loader = champions, loader
        self.loaded: dict[tuple[str, str], LoadedRelease] = {}
        self.failed: dict[tuple[str, str], float] = {}
        self.locks: dict[tuple[str, str], asyncio.Lock] = {}

    def _retry_later(self, key: tuple[str, str]) -> bool:
        return time.monotonic() - self.failed.get(key, -math.inf) < LOAD_RETRY_S

    async def get(self, release: str, version: str | None) -> LoadedRelease | None:
        """The release at ``version``; None when it cannot be had (the caller serves the champion)."""
        champion = self.champions[release]
        if version is None or version == champion.version:
            return champion
        key = (release, version)
        if key in self.loaded:
            return self.loaded[key]
        if self._retry_later(key):
            return None
        if self.loader is None:
            log.warning("%s %s is routed to but not loaded and no loader was given: serving the champion", *key)
            self.failed[key] = math.inf  # never retried, so warned once, not on every request
            return None
        async with self.locks.setdefault(key, asyncio.Lock()):  # concurrent requests share one load
            if key not in self.loaded and not self._retry_later(key):
                try:
                    self.loaded[key] = await run_in_threadpool(self.loader, release, version)
                except Exception:
                    log.exception("loading %s %s failed: serving the champion", *key)
                    self.failed[key] = time.monotonic()
        return self.loaded.get(key)


def create_app(
    releases: dict[str, LoadedRelease],
    *,
    router: Any = None,
    shadow: Any = None,
    tracing: Any = None,
    metrics: ServingMetrics | None = None,
    token: str | None = None,
    max_body: int = 64 * 1024,
    ready: Callable[[], tuple[bool, Any]] | None = None,
    loader: Callable[[str, str], LoadedRelease] | None = None,
    breakers: Breakers | None = None,
) -> Starlette:
    """The app over ``releases`` (name -> loaded champion; None: configured but failed to load, so ``/readyz``
    and that release's predict answer 503).

    ``router``: ``.route(release, key)`` and ``.shadow(release, key)`` (flags.FlagRouter); ``shadow``: ``.submit``
    (shadow.ShadowPool, whose ``on_pair`` may be ``metrics.observe_pair``); ``tracing``: traces.Tracing;
    ``loader(release, version)``: loads a version the router names; ``ready() -> (ok, detail)`` replaces the
    default readiness rule (every release loaded); ``breakers`` (breaker.Breakers): a canary whose breaker is open
    is not routed to, and every answer's outcome feeds the breaker of the version that gave it.
    ``app.state.metrics`` is the ``ServingMetrics`` in use.
    """
    if token is not None and not token:
        # An empty RELEASE_ASSETS_SERVE_TOKEN must not silently mean "no authentication".
        raise ValueError("token is empty: pass None to serve without a token")
    metrics = metrics if metrics is not None else ServingMetrics()
    versions = _Versions(releases, loader)
    secret = token.encode() if token else None

    async def predict(request: Request) -> Response:
        started = time.perf_counter()
        rid = _request_id(request.headers.get("x-request-id"))
        name = request.path_params["release"]
        champion = releases.get(name)
        # Unknown names share one label: a client must not be able to mint time series.
        labels = (name if name in releases else "_unknown", getattr(champion, "version", NONE), NONE)

        def answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
            metrics.observe_request(*labels, status)
            return _json(status, {**body, "request_id": rid}, {"X-Request-Id": rid, **(headers or {})})

        # Authentication first: an unauthenticated client learns nothing, not even which releases exist.
        if secret is not None and not _authorized(request.headers.get("authorization"), secret):
            return answer(401, {"error": "missing or wrong bearer token"}, {"WWW-Authenticate": "Bearer"})
        if name not in releases:
            return answer(404, {"error": "unknown release", "release": name[:64], "known": sorted(releases)})
        if champion is None:
            return answer(503, {"error": f"{name} is not loaded", "release": name})
        try:
            raw, payload = await _read_json(request, max_body)
        except _Refused as refused:
            return answer(refused.status, refused.body)

        # Same user, same variant; without a user id the same body lands on the same variant (stable retries).
        user_id = payload.get("user_id") if isinstance(payload, dict) else None
        key = user_id if isinstance(user_id, str) and user_id else hashlib.sha256(raw).hexdigest()
        variant, version, shadow_version = "champion", None, None
        if router is not None:
            try:
                variant, version = router.route(name, key)
                shadow_version = router.shadow(name, key) if shadow is not None else None
            except Exception:  # a broken flag file degrades to the champion, never to an error
                log.exception("flag routing failed for %s: serving the champion", name)
                variant, version, shadow_version = "champion", None, None
        if breakers is not None:  # a canary whose breaker is open gives way to the champion
            variant, version = breakers.route(name, variant, version)
        target = await versions.get(name, version)
        if target is None:
            target, variant = champion, "champion"
        labels = (name, target.version, variant)

        def run() -> tuple[dict[str, Any], bytes, float]:
            t0 = time.perf_counter()
            if tracing is None:
                out = target.predict(payload, variant=variant, request_id=rid)
            else:
                user = user_id if isinstance(user_id, str) else None
                span_args = (name, target.version, variant, rid, target.kind)
                with tracing.request_span(*span_args, input_value=payload, user_id=user) as span:
                    # tracing.observer: None when tracing is off, so the chain skips all observation work.
                    out = target.predict(payload, variant=variant, request_id=rid, observer=tracing.observer(span))
                    span.set_output(out)
            out = {**out, "request_id": rid}
            # Encoded here so an unserialisable answer (NaN, a numpy scalar) is a counted failing step too.
            encoded = json.dumps(out, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
            return out, encoded, (time.perf_counter() - t0) * 1000

        def outcome(failed: bool) -> None:  # 4xx never reached the model: no outcome
            is_open = breakers.record(name, target.version, variant, failed) if breakers is not None else None
            if is_open is not None:
                metrics.set_circuit_open(*labels, is_open)

        answered = True
        try:
            # predict is CPU work: off the event loop, so health checks keep answering meanwhile.
            response, encoded, predict_ms = await run_in_threadpool(run)
        except RequestError as exc:
            answered = False  # bad input never reached the model: not an answer, no latency sample
            status = exc.status if 400 <= exc.status < 500 else 422
            return answer(status, {"error": str(exc), "field": exc.field})
        except Exception as exc:
            log.exception("predict failed: release=%s version=%s variant=%s request_id=%s", *labels, rid)
            metrics.observe_error(*labels, exc)
            outcome(True)
            # Short on purpose: step errors may quote the request; the log has the whole story under this id.
            return answer(500, {"error": f"prediction failed ({type(exc).__name__})"})
        finally:
            if answered:
                metrics.observe_latency(*labels, time.perf_counter() - started)
        metrics.observe_response(*labels, response)
        outcome(bool(schema_failures(response)))
        if shadow_version is not None:
            try:  # submit only enqueues; the shadow answer is computed off the request path and never awaited
                accepted = bool(shadow.submit(name, response, payload, shadow_version, primary_latency_ms=predict_ms))
            except Exception:
                log.exception("shadow submit failed for %s %s", name, shadow_version)
                accepted = False
            metrics.observe_shadow_submit(name, target.version, shadow_version, accepted)
        metrics.observe_request(*labels, 200)
        return Response(encoded, media_type="application/json", headers={"X-Request-Id": rid})

    async def healthz(request: Request) -> Response:
        return _json(200, {"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            ok, detail = ready() if ready is not None else _loaded(releases)
        except Exception as exc:
            log.exception("readiness check failed")
            ok, detail = False, f"readiness check failed ({type(exc).__name__})"
        return _json(200 if ok else 503, {"ready": bool(ok), "reason": detail})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    app = Starlette(
        routes=[
            Route("/v1/{release}/predict", predict, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ]
    )
    app.state.metrics, app.state.versions = metrics, versions  # the CLI hands metrics to the shadow pool
    return app


def _loaded(releases: dict[str, Any]) -> tuple[bool, Any]:
    if not releases:
        return False, "no release configured"
    missing = sorted(name for name, loaded in releases.items() if loaded is None)
    if missing:
        return False, f"not loaded: {', '.join(missing)}"
    return True, {name: loaded.version for name, loaded in releases.items()}
