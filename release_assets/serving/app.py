"""The Starlette app ``release-assets serve`` runs: predict (/v1, and the Open Inference Protocol's /v2), health,
readiness, metrics and /openapi.json.

Bad input never becomes a 5xx: every check a client can fail is answered 4xx before the model runs, and only an
exception from inside ``predict`` (a failing step) is a 500, counted and logged while the process keeps serving.
Routing is decided only by the flag router the process was started with: there is no admin endpoint.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import hmac
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib import metadata
from typing import TYPE_CHECKING, Any, NamedTuple

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from release_assets.serving import oip, openapi
from release_assets.serving.admission import Admission, AdmissionPolicy
from release_assets.serving.batching import Batcher
from release_assets.serving.feedback import DuplicateFeedback, FeedbackBook, UnknownRequest
from release_assets.serving.metrics import CONTENT_TYPE, ServingMetrics, schema_failures
from release_assets.serving.requests import BODY, PredictCall, RequestError, validate
from release_assets.serving.schemas import FeedbackRequest

if TYPE_CHECKING:
    from release_assets.serving.breaker import Breakers
    from release_assets.serving.loader import LoadedRelease

log = logging.getLogger(__name__)

REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
LOAD_RETRY_S = 60.0  # a version that failed to load is retried after this, not on every request
NONE = "none"  # the variant/version label of a request refused before routing chose one
MAX_DEPTH = 64  # JSON nesting a request may have: no body this server takes goes deeper than 4


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    # default=str: a readiness detail may hold paths or exceptions; it must still render.
    content = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=str)
    return Response(content.encode(), status_code=status, headers=headers, media_type="application/json")


class _RandomIds:
    """Version-4 UUIDs (hyphenated: the trace redactor masks bare 32-hex tokens as secrets) from the OS's random
    bytes, fetched 256 ids at a time. ``uuid.uuid4()`` asks the OS once per id, and the call releases the GIL: on a
    busy server the span exporter's thread takes it then, and the request waits for it back."""

    BATCH = 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hex, self._next = "", self.BATCH
        if hasattr(os, "register_at_fork"):  # a forked worker must not hand out its parent's next ids
            os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._hex, self._next = "", self.BATCH

    def new(self) -> str:
        with self._lock:
            if self._next == self.BATCH:
                self._hex, self._next = os.urandom(16 * self.BATCH).hex(), 0
            h = self._hex[32 * self._next : 32 * self._next + 32]
            self._next += 1
        variant = "89ab"[int(h[16], 16) & 3]  # RFC 9562: version 4, variant 10xx
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


_random_ids = _RandomIds()


def _request_id(given: str | None) -> str:
    # The id lands in logs and headers: anything but a short plain token is replaced, never echoed.
    return given if given is not None and REQUEST_ID.fullmatch(given) else _random_ids.new()


def _authorized(header: str | None, token: bytes) -> bool:
    scheme, _, given = (header or "").partition(" ")
    # Starlette decodes headers as latin-1: re-encoding gives back the exact bytes the client sent.
    given_bytes = given.strip().encode("latin-1", errors="replace")
    return hmac.compare_digest(given_bytes, token) and scheme.lower() == "bearer"


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")  # json.loads would otherwise accept NaN and Infinity


class _Refused(Exception):
    """A request answered with an error: ``status``, what is wrong, the field at fault, and what else the /v1 body
    carries (``extra``) and the response's headers; ``request_error`` when the release's request model refused it."""

    def __init__(
        self,
        status: int,
        error: str,
        field: str | None = None,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        request_error: RequestError | None = None,
    ) -> None:
        super().__init__(error)
        self.status, self.error, self.field, self.extra, self.headers = status, error, field, extra or {}, headers
        self.request_error = request_error

    @property
    def body(self) -> dict[str, Any]:
        """The /v1 error body (without the request id)."""
        return {"error": self.error, **({"field": self.field} if self.field else {}), **self.extra}


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, or ``_Refused`` (413/400); past ``limit`` the body is never read further."""
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
    return b"".join(chunks)


def _parse_json(raw: bytes) -> Any:
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise _Refused(400, "body is not valid UTF-8", BODY) from None
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise _Refused(400, "body is not valid JSON", BODY) from None
    if _deeper_than(value, MAX_DEPTH):  # whatever the interpreter's recursion limit let json.loads read
        raise _Refused(400, f"body is not valid JSON (nested deeper than {MAX_DEPTH} levels)", BODY)
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _media_type(request: Request) -> tuple[str | None, list[str]]:
    """The Content-Type's media type (lower case; None when there is none) and its charsets."""
    header = request.headers.get("content-type")
    if header is None:
        return None, []
    media, *params = header.split(";")
    charsets = [p.split("=", 1)[1].strip().strip('"').lower() for p in params if p.strip().startswith("charset=")]
    return media.strip().lower(), charsets


async def _read_json(request: Request, limit: int) -> tuple[bytes, Any]:
    """The raw body and its JSON, or ``_Refused`` (415/413/400); past ``limit`` the body is never read further."""
    media, charsets = _media_type(request)
    if media != "application/json" or any(c not in ("utf-8", "utf8") for c in charsets):
        raise _Refused(415, "expected Content-Type: application/json (UTF-8)")
    raw = await _read_body(request, limit)
    return raw, _parse_json(raw)


async def _read_infer(request: Request, limit: int) -> tuple[Any, bytes]:
    """A v2 inference request: its JSON, and the binary tensor data after it (Triton's binary extension: the
    JSON's length in Inference-Header-Content-Length). tritonclient sends no Content-Type: none is JSON too."""
    media, charsets = _media_type(request)
    if media not in (None, "application/json", "application/octet-stream") or any(
        c not in ("utf-8", "utf8") for c in charsets
    ):
        raise _Refused(415, "expected Content-Type: application/json, or application/octet-stream (binary tensors)")
    if request.headers.get("content-encoding", "identity").strip().lower() != "identity":
        raise _Refused(415, "compressed request bodies are not accepted (Content-Encoding)")
    raw = await _read_body(request, limit)
    header = request.headers.get(oip.HEADER_LENGTH)
    if header is None:
        return _parse_json(raw), b""
    if not (header.isascii() and header.isdigit()) or int(header) > len(raw):
        raise _Refused(400, f"invalid {oip.HEADER_LENGTH}: {header[:20]!r} for a body of {len(raw)} bytes")
    return _parse_json(raw[: int(header)]), raw[int(header) :]


class _Call:
    """One prediction request on its way through: its id, when it started, and the metric labels it is counted
    under (the release, then the version and variant routing chose)."""

    def __init__(self, name: str, rid: str, known: bool, champion: Any) -> None:
        self.name, self.rid, self.started = name, rid, time.perf_counter()
        # Unknown names share one label: a client must not be able to mint time series.
        self.labels = (name if known else "_unknown", getattr(champion, "version", NONE), NONE)


class _Versions:
    """The champions given at start, plus the versions the router names, each loaded (and verified) once, in a
    thread of its own: a request never waits for a load. A request routed to a version that is not loaded yet is
    answered by the champion while the version loads, so no user reaches a version before it is loaded and verified
    (``serve`` also preloads the versions its flag files name, so usually it is ready before the first request)."""

    def __init__(self, champions: dict[str, LoadedRelease], loader: Callable[[str, str], LoadedRelease] | None):
        self.champions, self.loader = champions, loader
        self.loaded: dict[tuple[str, str], LoadedRelease] = {}
        self.failed: dict[tuple[str, str], float] = {}
        self._loading: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def _retry_later(self, key: tuple[str, str]) -> bool:
        return time.monotonic() - self.failed.get(key, -math.inf) < LOAD_RETRY_S

    @property
    def loading(self) -> frozenset[tuple[str, str]]:
        """The versions loading in the background now."""
        with self._lock:
            return frozenset(self._loading)

    def get(self, release: str, version: str | None) -> LoadedRelease | None:
        """The release at ``version`` if it is loaded; else None (the caller serves the champion) and, unless it
        failed within ``LOAD_RETRY_S``, its load starts in the background."""
        champion = self.champions[release]
        if version is None or version == champion.version:
            return champion
        key = (release, version)
        found = self.loaded.get(key)
        if found is not None:
            return found
        if self.loader is None:
            if key not in self.failed:  # warned once, not on every request
                log.warning("%s %s is routed to but not loaded and no loader was given: serving the champion", *key)
                self.failed[key] = math.inf
            return None
        with self._lock:
            if key in self._loading or self._retry_later(key):
                return None
            self._loading.add(key)
        threading.Thread(target=self.preload, args=key, name=f"load-{release}-{version}", daemon=True).start()
        return None

    def preload(self, release: str, version: str) -> LoadedRelease | None:
        """Load (and verify) ``version`` now, in the calling thread; None (logged, retried later) when it fails."""
        key = (release, version)
        try:
            if key not in self.loaded and self.loader is not None:
                self.loaded[key] = self.loader(release, version)
                self.failed.pop(key, None)
        except Exception:
            log.exception("loading %s %s failed: serving the champion", *key)
            self.failed[key] = time.monotonic()
        finally:
            with self._lock:
                self._loading.discard(key)
        return self.loaded.get(key)

    def retire(self, keep: set[tuple[str, str]]) -> list[tuple[str, str]]:
        """Forget every loaded version not in ``keep``: the next request for one loads it again."""
        gone = [key for key in list(self.loaded) if key not in keep]
        for key in gone:
            self.loaded.pop(key, None)
        return gone


class _Job(NamedTuple):
    """One request waiting for its batch: what ``predict`` needs, the user its span names, how to encode it."""

    payload: Any
    variant: str
    rid: str
    user: str | None
    render: Callable[[dict[str, Any], Any], bytes]


class _Costs:
    """Each version's recent prediction times (the seconds ``run`` took, the last ``WINDOW``), read and written on
    the event loop only; a version is fast while their median is under ``INLINE_BELOW_S`` and none reached
    ``BLOCKS_AT_S``. Unknown until measured: a version's first answers run in the threadpool.

    The median, not a mean: a time is sometimes inflated by waiting for the GIL (the span exporter's thread holds it
    now and then), and a mean of those outliers once sent iris's 50 us predictions to the threadpool for good, where
    every hop inflated the next time again."""

    INLINE_BELOW_S = 0.001
    # ...and none of them took this long: a version whose answers are fast half of the time and slow the other
    # half (a cache in front of a slow call) must not hold the event loop for its slow ones.
    BLOCKS_AT_S = 0.02
    WINDOW = 15

    def __init__(self) -> None:
        self._recent: dict[tuple[str, str], collections.deque[float]] = {}
        self._fast: dict[tuple[str, str], bool] = {}

    def fast(self, key: tuple[str, str]) -> bool:
        return self._fast.get(key, False)

    def observe(self, key: tuple[str, str], seconds: float) -> None:
        recent = self._recent.get(key)
        if recent is None:
            recent = self._recent[key] = collections.deque(maxlen=self.WINDOW)
        recent.append(seconds)
        ordered = sorted(recent)
        self._fast[key] = ordered[len(ordered) // 2] < self.INLINE_BELOW_S and ordered[-1] < self.BLOCKS_AT_S


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
    admission: AdmissionPolicy | None = None,
    feedback: FeedbackBook | None = None,
) -> Starlette:
    """The app over ``releases`` (name -> loaded champion; None: configured but failed to load, so ``/readyz``
    and that release's predict answer 503).

    ``router``: ``.route(release, key)`` and ``.shadow(release, key)`` (flags.FlagRouter); ``shadow``: ``.submit``
    (shadow.ShadowPool, whose ``on_pair`` may be ``metrics.observe_pair``); ``tracing``: traces.Tracing;
    ``loader(release, version)``: loads a version the router names; ``ready() -> (ok, detail)`` replaces the
    default readiness rule (every release loaded); ``breakers`` (breaker.Breakers): a canary whose breaker is open
    is not routed to, and every answer's outcome feeds the breaker of the version that gave it. ``admission``
    (admission.AdmissionPolicy; default: its defaults): how many predictions this app holds at once and, optionally,
    each client's rate; a request past either is answered 503/429 with ``Retry-After`` before its body is read.
    ``feedback`` (feedback.FeedbackBook; default: this worker's alone): the recent answers ``POST
    /v1/{release}/feedback`` can name, and the feedback already taken.
    ``app.state.metrics`` is the ``ServingMetrics`` in use.

    Two protocols answer predictions through one path (:func:`answer` below): ``POST /v1/{release}/predict`` (the
    release's own JSON) and the Open Inference Protocol's ``POST /v2/models/{release}/infer`` (tensors, serving/
    oip.py, converted to the /v1 body before and from the answer after). ``/openapi.json`` describes both, generated
    from the pydantic models that validate them (serving/schemas.py, serving/openapi.py).
    """
    if token is not None and not token:
        # An empty RELEASE_ASSETS_SERVE_TOKEN must not silently mean "no authentication".
        raise ValueError("token is empty: pass None to serve without a token")
    metrics = metrics if metrics is not None else ServingMetrics()
    versions = _Versions(releases, loader)
    secret = token.encode() if token else None
    documents = openapi.Documents(protected=secret is not None)
    gate = Admission(admission if admission is not None else AdmissionPolicy())
    costs = _Costs()
    batcher = Batcher(on_batch=lambda target, size: metrics.observe_batch(target.release, target.version, size))
    book = feedback if feedback is not None else FeedbackBook()

    def shed(call: _Call, request: Request) -> None:
        """``_Refused`` (503 overloaded, 429 rate limited, with Retry-After) unless the request may take a slot;
        admitted, the caller must ``gate.leave()``. With a token every client presents the same one, so the rate is
        the token's; without, each address has its own."""
        client = "bearer" if secret is not None else (request.client.host if request.client else "unknown")
        refused = gate.enter(client)
        if refused is None:
            return
        metrics.observe_shed(call.labels[0], refused.reason)
        what = (
            f"overloaded: {gate.policy.max_in_flight} predictions in flight"
            if refused.status == 503
            else "rate limit exceeded"
        )
        raise _Refused(refused.status, f"{what}; retry after {refused.retry_after_s} s", headers=refused.headers)

    def admit(request: Request, name: str) -> LoadedRelease:
        """The champion of ``name``, or ``_Refused``: 401 first (an unauthenticated client learns nothing, not even
        which releases exist), then 404 for an unknown release and 503 for one that is not loaded."""
        if secret is not None and not _authorized(request.headers.get("authorization"), secret):
            raise _Refused(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
        if name not in releases:
            raise _Refused(404, "unknown release", extra={"release": name[:64], "known": sorted(releases)})
        champion = releases[name]
        if champion is None:
            raise _Refused(503, f"{name} is not loaded", extra={"release": name})
        return champion

    async def answer(
        call: _Call, champion: LoadedRelease, payload: Any, key: str, render: Callable[[dict[str, Any], Any], bytes]
    ) -> bytes:
        """Route, load, predict (traced, off the event loop), count, feed the breaker, submit the shadow: the path
        of every prediction, whichever protocol asked. ``render(answer, target)`` encodes the answer (in the
        thread, so an answer that cannot be encoded is a counted failing step); ``_Refused`` for a request the
        release's model refused (422, 400) or a failing step (500)."""
        name, rid = call.name, call.rid
        user_id = payload.get("user_id") if isinstance(payload, dict) else None
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
        target = versions.get(name, version)
        if target is None:
            target, variant = champion, "champion"
        call.labels = labels = (name, target.version, variant)

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
            return out, render(out, target), (time.perf_counter() - t0) * 1000

        def outcome(failed: bool) -> None:  # 4xx never reached the model: no outcome
            is_open = breakers.record(name, target.version, variant, failed) if breakers is not None else None
            if is_open is not None:
                metrics.set_circuit_open(*labels, is_open)

        answered = True
        try:
            # A prediction that takes less than a hop to a thread and back (iris: ~50 us against ~200 us of hop
            # and GIL hand-over) runs right here; a slower one runs in the threadpool, so health checks and other
            # requests keep answering meanwhile. Each version's recent cost decides, so one that slows down moves
            # to the threadpool after a few answers. A chain that runs here whole is answered in batches: the
            # requests that arrive while its last batch runs share the next (serving/batching.py).
            if getattr(target, "batchable", False):
                job = _Job(payload, variant, rid, user_id if isinstance(user_id, str) else None, render)
                response, encoded, predict_ms = await batcher.submit(target, job, functools.partial(run_batch, target))
            elif costs.fast(labels[:2]):
                response, encoded, predict_ms = run()
            else:
                response, encoded, predict_ms = await run_in_threadpool(run)
            costs.observe(labels[:2], predict_ms / 1000)
        except RequestError as exc:
            answered = False  # bad input never reached the model: not an answer, no latency sample
            status = exc.status if 400 <= exc.status < 500 else 422
            raise _Refused(status, str(exc), exc.field, request_error=exc) from None
        except Exception as exc:
            log.exception("predict failed: release=%s version=%s variant=%s request_id=%s", *labels, rid)
            metrics.observe_error(*labels, exc)
            outcome(True)
            # Short on purpose: step errors may quote the request; the log has the whole story under this id.
            raise _Refused(500, f"prediction failed ({type(exc).__name__})") from None
        finally:
            if answered:
                metrics.observe_latency(*labels, time.perf_counter() - call.started)
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
        book.answered(call.rid, *labels)
        return encoded

    def run_batch(target: LoadedRelease, jobs: list[_Job]) -> list[tuple[dict[str, Any], bytes, float] | Exception]:
        """Several requests for ``target`` in one ``predict_many`` (in the threadpool), each traced in a request
        span of its own: each one's answer, encoding and the batch's time, or the exception its request gets."""
        t0 = time.perf_counter()
        with contextlib.ExitStack() as spans:
            opened = [
                spans.enter_context(
                    tracing.request_span(
                        target.release,
                        target.version,
                        job.variant,
                        job.rid,
                        target.kind,
                        input_value=job.payload,
                        user_id=job.user,
                    )
                )
                if tracing is not None
                else None
                for job in jobs
            ]
            calls = [
                PredictCall(job.payload, job.variant, job.rid, tracing.observer(span) if tracing is not None else None)
                for job, span in zip(jobs, opened, strict=True)
            ]
            answers = target.predict_many(calls)
            predict_ms = (time.perf_counter() - t0) * 1000
            results: list[tuple[dict[str, Any], bytes, float] | Exception] = []
            for job, span, answer in zip(jobs, opened, answers, strict=True):
                if isinstance(answer, Exception):
                    if span is not None:  # as request_span records an exception raised inside it
                        span.span.record_exception(answer)
                        span.set_output(None, error=f"{type(answer).__name__}: {answer}")
                    results.append(answer)
                    continue
                if span is not None:
                    span.set_output(answer)
                try:  # an answer that cannot be encoded fails its own request, as in run()
                    results.append((answer, job.render(answer, target), predict_ms))
                except Exception as exc:
                    results.append(exc)
        return results

    def refuse(call: _Call, refused: _Refused, body: dict[str, Any]) -> Response:
        metrics.observe_request(*call.labels, refused.status)
        return _json(refused.status, body, {"X-Request-Id": call.rid, **(refused.headers or {})})

    async def predict(request: Request) -> Response:
        name = request.path_params["release"]
        call = _Call(name, _request_id(request.headers.get("x-request-id")), name in releases, releases.get(name))
        try:
            champion = admit(request, name)
            shed(call, request)
            try:
                raw, payload = await _read_json(request, max_body)
                # Same user, same variant; without a user id the same body lands on the same variant (stable retries).
                user_id = payload.get("user_id") if isinstance(payload, dict) else None
                key = user_id if isinstance(user_id, str) and user_id else hashlib.sha256(raw).hexdigest()
                encoded = await answer(call, champion, payload, key, _encode_v1)
            finally:
                gate.leave()
        except _Refused as refused:
            return refuse(call, refused, {**refused.body, "request_id": call.rid})
        return Response(encoded, media_type="application/json", headers={"X-Request-Id": call.rid})

    async def take_feedback(request: Request) -> Response:
        """POST /v1/{release}/feedback: an outcome for an answer this server gave, counted once against the version
        and variant that gave it. 404 for an id not remembered (see serving/feedback.py), 409 for a second one."""
        name = request.path_params["release"]
        call = _Call(name, _request_id(request.headers.get("x-request-id")), name in releases, releases.get(name))
        try:
            admit(request, name)
            _, body = await _read_json(request, max_body)
            try:
                given = validate(FeedbackRequest, body)
            except RequestError as exc:
                raise _Refused(exc.status, str(exc), exc.field, request_error=exc) from None
            try:
                answered = book.take(given.request_id, name)
            except UnknownRequest:
                raise _Refused(
                    404, f"no recent answer of {name} has request_id {given.request_id!r}", "request_id"
                ) from None
            except DuplicateFeedback:
                raise _Refused(409, f"feedback for {given.request_id!r} was already taken", "request_id") from None
        except _Refused as refused:
            return _json(refused.status, {**refused.body, "request_id": call.rid}, refused.headers)
        counted = feedback_outcomes(given)
        metrics.observe_feedback(answered.release, answered.version, answered.variant, counted)
        if given.text is not None:
            redact = tracing.redactor.text if tracing is not None else _default_redactor().text
            log.info(
                "feedback for %s (%s %s): %s", given.request_id, answered.version, answered.variant, redact(given.text)
            )
        body = {"request_id": given.request_id, **asdict(answered), "counted": counted}
        return _json(200, body, {"X-Request-Id": call.rid})

    async def infer(request: Request) -> Response:
        """POST /v2/models/{name}/infer: the tensors as the /v1 body, then the same path as predict."""
        name = request.path_params["name"]
        call = _Call(name, _request_id(request.headers.get("x-request-id")), name in releases, releases.get(name))
        try:
            champion = admit(request, name)
            shed(call, request)
            try:
                encoded = await infer_admitted(request, call, champion)
            finally:
                gate.leave()
        except _Refused as refused:
            return refuse(call, refused, {"error": _v2_error(refused, releases.get(name))})
        return Response(encoded, media_type="application/json", headers={"X-Request-Id": call.rid})

    async def infer_admitted(request: Request, call: _Call, champion: LoadedRelease) -> bytes:
        """An admitted v2 request: its body read and converted, then answered through :func:`answer`."""
        name = call.name
        body, binary = await _read_infer(request, max_body)
        sig = champion.signature
        try:
            parsed = validate(oip.infer_request(sig), body)
            requested = oip.requested_outputs(parsed)
            payload = oip.to_payload(sig, parsed, binary)
        except RequestError as exc:
            raise _Refused(exc.status, str(exc), exc.field, request_error=exc) from None
        given_id = parsed.id
        if given_id is not None and request.headers.get("x-request-id") is None:
            call.rid = _request_id(given_id)  # the request's own id, when it is a plain token
        user_id = payload.get("user_id")
        # Without a user id, the same tensors land on the same variant, whatever their encoding or id.
        canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        key = user_id if isinstance(user_id, str) and user_id else hashlib.sha256(canonical.encode()).hexdigest()

        def render(out: dict[str, Any], target: Any) -> bytes:
            response = oip.infer_response(name, getattr(target, "signature", sig), out, given_id, requested)
            return json.dumps(response, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()

        return await answer(call, champion, payload, key, render)

    def model(request: Request) -> tuple[str, LoadedRelease] | Response:
        """The release a /v2/models/{name}... GET is about, or its error response (401, 404, 503 as for infer)."""
        name = request.path_params["name"]
        try:
            return name, admit(request, name)
        except _Refused as refused:
            return _json(refused.status, {"error": _v2_error(refused, None)}, refused.headers)

    async def model_metadata(request: Request) -> Response:
        found = model(request)
        if isinstance(found, Response):
            return found
        name, champion = found
        return _json(200, oip.metadata(name, champion.signature))

    async def model_ready(request: Request) -> Response:
        # Health answers carry no body (predict API v2): 200 is true, a 4xx false.
        found = model(request)
        if isinstance(found, Response):
            return Response(status_code=400) if found.status_code == 503 else found
        return Response(status_code=200)

    def readiness() -> tuple[bool, Any]:
        try:
            return ready() if ready is not None else _loaded(releases)
        except Exception as exc:
            log.exception("readiness check failed")
            return False, f"readiness check failed ({type(exc).__name__})"

    async def healthz(request: Request) -> Response:
        return _json(200, {"status": "ok"})

    async def readyz(request: Request) -> Response:
        ok, detail = readiness()
        return _json(200 if ok else 503, {"ready": bool(ok), "reason": detail})

    async def live_v2(request: Request) -> Response:
        return Response(status_code=200)

    async def ready_v2(request: Request) -> Response:
        return Response(status_code=200 if readiness()[0] else 400)

    async def server_metadata(request: Request) -> Response:
        return _json(200, {"name": oip.PLATFORM, "version": _package_version(), "extensions": []})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def openapi_json(request: Request) -> Response:
        if secret is not None and not _authorized(request.headers.get("authorization"), secret):
            return _json(401, {"error": "missing or wrong bearer token"}, {"WWW-Authenticate": "Bearer"})
        return Response(documents.get(releases, _package_version()), media_type="application/json")

    app = Starlette(
        routes=[
            Route("/v1/{release}/predict", predict, methods=["POST"]),
            Route("/v1/{release}/feedback", take_feedback, methods=["POST"]),
            Route("/v2/models/{name}/infer", infer, methods=["POST"]),
            Route("/v2/models/{name}/ready", model_ready, methods=["GET"]),
            Route("/v2/models/{name}", model_metadata, methods=["GET"]),
            Route("/v2/health/live", live_v2, methods=["GET"]),
            Route("/v2/health/ready", ready_v2, methods=["GET"]),
            Route("/v2", server_metadata, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
        ]
    )
    app.state.metrics, app.state.versions = metrics, versions  # the CLI hands metrics to the shadow pool
    return app


def feedback_outcomes(given: FeedbackRequest) -> list[str]:
    """The counter outcomes (metrics.FEEDBACK_OUTCOMES) one feedback reports; free text alone counts none."""
    counted = []
    if given.resolved is not None:
        counted.append("resolved" if given.resolved else "unresolved")
    if given.thumbs is not None:
        counted.append(f"thumbs_{given.thumbs}")
    if given.escalation is not None:
        counted.append(f"escalation_{given.escalation}")
    return counted


@functools.cache
def _default_redactor() -> Any:
    from release_assets.serving.trace_export import Redactor  # the trace rules; only loaded for free text

    return Redactor.from_env()


def _encode_v1(out: dict[str, Any], target: Any) -> bytes:
    return json.dumps(out, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _v2_error(refused: _Refused, champion: Any) -> str:
    """The v2 error text: the /v1 message, with a field named as the input it came from and a 404's known list."""
    exc, sig = refused.request_error, getattr(champion, "signature", None)
    if exc is not None:
        field = oip.v2_field(sig, exc.field) if sig is not None else exc.field
        return f"{field}: {exc.message}"
    if refused.status == 404:
        return f"unknown model {refused.extra.get('release')!r} (known: {', '.join(refused.extra.get('known', []))})"
    return refused.error


@functools.cache
def _package_version() -> str:
    try:
        return metadata.version("release_assets")
    except metadata.PackageNotFoundError:
        return "unknown"


def _loaded(releases: dict[str, Any]) -> tuple[bool, Any]:
    if not releases:
        return False, "no release configured"
    missing = sorted(name for name, loaded in releases.items() if loaded is None)
    if missing:
        return False, f"not loaded: {', '.join(missing)}"
    return True, {name: loaded.version for name, loaded in releases.items()}
