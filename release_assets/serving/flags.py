"""Champion/canary routing and shadow sampling through OpenFeature, with flags in flagd's file format.

One file per release, ``<store>/flags/<release>.flagd.json``, so each release has one writer (promoting one release
never rewrites another's flags) and a broken file affects one release. It holds two string flags:
``<release>.route`` (variants ``champion``/``canary`` -> version) and ``<release>.shadow`` (``off`` -> "", ``on`` ->
the shadow version). Both split with flagd's ``fractional`` on murmur3(flag key + targeting key): a key keeps its
variant while the file is unchanged, the two flags sample independently, and raising the canary share only moves
keys champion -> canary (the canary bucket is listed last, so it grows downwards).

:class:`FlagRouter` reads the flags only through the OpenFeature client: one flagd in-process provider per release
file, each bound to its own OpenFeature domain (the provider registry is process-global). flagd 0.5's file watcher
polls the file's mtime every ``deadline_ms`` (its ``offline_poll_interval_ms`` setting is ignored), so
``poll_interval_s`` is passed as ``deadline_ms`` and a change applies within about one interval, without a restart.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import Reason
from openfeature.provider import ProviderStatus
from openfeature.provider.no_op_provider import NoOpProvider

from release_assets.atomic import replacing
from release_assets.manifest import NAME
from release_assets.release.store import LocalReleaseStore, ReleaseStore, StoreError
from release_assets.serving.throttle import Throttle

CHAMPION, CANARY = "champion", "canary"
SUFFIX = ".flagd.json"
_VERSION = re.compile(r"^[0-9a-f]{16}$")
_NAME = re.compile(NAME)
log = logging.getLogger(__name__)


class FlagError(ValueError):
    """A flag document that would not mean what was asked; the message names the field."""


def flags_path(flags_dir: Path, release: str) -> Path:
    return Path(flags_dir) / f"{release}{SUFFIX}"


def store_flags_dir(store: ReleaseStore) -> Path:
    """Flag files sit beside the store's releases; flagd watches a local file, so only a local store has them."""
    if not isinstance(store, LocalReleaseStore):
        raise StoreError(f"flag files ({{store}}/flags/<release>{SUFFIX}) need a local store, not {store!r}")
    return store.root / "flags"


def _check_version(field: str, value: Any) -> str:
    if not isinstance(value, str) or not _VERSION.match(value):
        raise FlagError(f"{field}: {value!r} is not a release version (16 lower-case hex digits)")
    return value


def _check_percent(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise FlagError(f"{field}: {value!r} is not a whole percentage (an int from 0 to 100)")
    return value


def _split(off: str, on: str, percent: int) -> dict[str, Any]:
    # The explicit bucket key equals flagd's shorthand today; spelling it out keeps it if the default changes.
    bucket = {"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]}
    return {"fractional": [bucket, [off, 100 - percent], [on, percent]]}


def flag_document(
    release: str,
    champion: str,
    canary: str | None = None,
    canary_percent: int = 0,
    shadow: str | None = None,
    shadow_percent: int = 0,
) -> dict[str, Any]:
    """The flagd document for ``release``: ``canary_percent`` of keys served by ``canary``; ``shadow_percent`` of
    keys also sent to ``shadow``, off the request path. A version left None is not in the file at all."""
    if not isinstance(release, str) or not _NAME.match(release):
        raise FlagError(f"release: {release!r} is not a release name (lower-case letters, digits and underscores)")
    _check_version("champion", champion)
    canary_percent = _check_percent("canary_percent", canary_percent)
    shadow_percent = _check_percent("shadow_percent", shadow_percent)
    route: dict[str, Any] = {"state": "ENABLED", "variants": {CHAMPION: champion}, "defaultVariant": CHAMPION}
    if canary is not None:
        route["variants"][CANARY] = _check_version("canary", canary)
        route["targeting"] = _split(CHAMPION, CANARY, canary_percent)
    elif canary_percent:
        raise FlagError(f"canary_percent: {canary_percent} needs a canary version")
    sampled: dict[str, Any] = {"state": "ENABLED", "variants": {"off": ""}, "defaultVariant": "off"}
    if shadow is not None:
        sampled["variants"]["on"] = _check_version("shadow", shadow)
        sampled["targeting"] = _split("off", "on", shadow_percent)
    elif shadow_percent:
        raise FlagError(f"shadow_percent: {shadow_percent} needs a shadow version")
    return {
        "$schema": "https://flagd.dev/schema/v0/flags.json",
        "metadata": {"release": release},
        "flags": {f"{release}.route": route, f"{release}.shadow": sampled},
    }


def write_flags(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` whole (temp file + rename), after flagd's own parser has accepted it."""
    path, text = Path(path), json.dumps(document, indent=2, sort_keys=True) + "\n"
    try:
        FlagdCore().set_flags(text)  # refuse a file the provider would reject, instead of discovering it live
    except Exception as exc:
        raise FlagError(f"{path}: not a flagd document flagd accepts ({exc})") from None
    owner = path.name.removesuffix(SUFFIX)  # the router looks up <release>.route in <release>.flagd.json only
    if path.name.endswith(SUFFIX) and any(not key.startswith(f"{owner}.") for key in document["flags"]):
        raise FlagError(f"{path}: holds flags {sorted(document['flags'])}, not {owner}.route/{owner}.shadow")
    try:
        before = path.stat().st_mtime_ns
    except FileNotFoundError:
        before = None
    with replacing(path) as tmp:
        tmp.write_text(text)
        # The watcher reloads only when the mtime grows: on a coarse clock two writes can share one, so step past.
        # 1 ms, not 1 ns, because the watcher compares float seconds.
        if before is not None and tmp.stat().st_mtime_ns <= before:
            os.utime(tmp, ns=(before + 1_000_000, before + 1_000_000))


def canary_version(store: ReleaseStore, release: str) -> str | None:
    """The version the release's canary variant serves (whatever its share), or None. For loading the version,
    not for routing: routing goes through :class:`FlagRouter`."""
    path = flags_path(store_flags_dir(store), release)
    try:
        document = json.loads(path.read_text())
        variants = document["flags"][f"{release}.route"]["variants"]
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"{path}: not a readable flag file ({exc!r})") from None
    found = variants.get(CANARY) if isinstance(variants, dict) else None
    return found if isinstance(found, str) and _VERSION.match(found) else None


def _quiet_flagd_logs() -> None:
    # flagd's watcher logs a traceback on every poll while a file is missing or malformed; keep one a minute.
    flagd_log = logging.getLogger("openfeature.contrib")
    if not any(isinstance(f, Throttle) for f in flagd_log.filters):
        flagd_log.addFilter(Throttle())


class FlagRouter:
    """Answers "which version serves this key" and "shadow this request?" per release; never raises on a request.

    Every failure (no file, malformed file, missing flag, unexpected value) answers the champion / no shadow and
    is counted in ``counts`` and logged (once a minute per release and reason). A release's provider starts once
    its file first exists (looked for at most once per poll interval), so a release without flags costs nothing.
    """

    def __init__(self, flags_dir: Path, poll_interval_s: float = 0.5) -> None:
        if not poll_interval_s >= 0.001:
            raise ValueError(f"poll_interval_s: {poll_interval_s!r}; flagd polls in whole milliseconds, at least 1")
        self.flags_dir, self.poll_interval_s = Path(flags_dir), poll_interval_s
        self._counts: Counter[str] = Counter()
        self._domain = f"release_assets.serving.flags/{uuid.uuid4().hex[:12]}"  # unique: the registry is global
        self._clients: dict[str, Any] = {}
        self._providers: dict[str, FlagdProvider] = {}
        self._next_look: dict[str, float] = {}
        self._lock, self._count_lock, self._closed = threading.Lock(), threading.Lock(), False
        self._throttle = Throttle()
        _quiet_flagd_logs()

    @property
    def counts(self) -> dict[str, int]:
        """``evaluations`` and, per fallback reason, how many answers fell back to the champion / no shadow."""
        with self._count_lock:
            return dict(self._counts)

    def _count(self, key: str) -> None:
        with self._count_lock:  # request threads share the router; ``Counter[k] += 1`` alone can lose counts
            self._counts[key] += 1

    def route(self, release: str, key: str) -> tuple[str, str | None]:
        """``(variant, version)``; ``("champion", None)`` means "the champion you loaded"."""
        details = self._evaluate(release, "route", key)
        if details is None:
            return CHAMPION, None
        if details.variant not in (CHAMPION, CANARY) or not _VERSION.match(str(details.value)):
            self._fallback(release, "unexpected_variant", f"{details.variant!r} -> {details.value!r}")
            return CHAMPION, None
        if details.variant == CHAMPION:
            # The ledger decides the champion, not a flag file written before the last promotion or rollback: a
            # stale file must never send traffic back to a version that was rolled back.
            return CHAMPION, None
        return details.variant, details.value

    def shadow(self, release: str, key: str) -> str | None:
        """The version to shadow this request with, or None."""
        details = self._evaluate(release, "shadow", key)
        if details is None or details.value == "":
            return None
        if not _VERSION.match(str(details.value)):
            self._fallback(release, "unexpected_variant", f"{details.variant!r} -> {details.value!r}")
            return None
        return details.value

    def close(self) -> None:
        """Unbind and stop every provider; their watcher threads (daemons) exit within one poll interval."""
        with self._lock:
            self._closed = True
            providers, self._providers, self._clients = self._providers, {}, {}
        for release, provider in providers.items():
            api.set_provider(NoOpProvider(), f"{self._domain}/{release}")  # no unbind API in 0.10; a no-op stays
            provider.shutdown()  # the registry also shuts it down, on a thread; do it now so close means closed

    def _evaluate(self, release: str, flag: str, key: str):
        self._count("evaluations")
        try:
            return self._resolve(release, flag, key)
        except Exception as exc:  # e.g. an unreadable flags folder, a bad FLAGD_* variable: never into a request
            return self._fallback(release, "internal_error", repr(exc))

    def _resolve(self, release: str, flag: str, key: str):
        if not isinstance(key, str) or not key:  # flagd cannot bucket an empty key (and logs each time)
            return self._fallback(release, "no_key", "empty targeting key")
        client = self._clients.get(release) or self._bind(release)
        if client is None:
            return self._fallback(release, "no_file")
        # A file that went missing or malformed after a good load leaves flagd serving the old flags with status
        # ERROR; answer the champion instead, so a broken edit never keeps (or starts) a canary.
        status = client.get_provider_status()
        if status != ProviderStatus.READY:
            return self._fallback(release, "provider_error", f"provider {status.value}")
        details = client.get_string_details(f"{release}.{flag}", "", EvaluationContext(targeting_key=key))
        if details.error_code is not None:
            return self._fallback(release, f"flag_error:{details.error_code.value}", details.error_message)
        if details.reason == Reason.DISABLED:  # an operator switched the flag off: champion / no shadow, on purpose
            return self._fallback(release, "disabled")
        return details

    def _bind(self, release: str):
        """Start the release's provider once its file exists; None until then."""
        now = time.monotonic()
        if self._closed or now < self._next_look.get(release, 0.0) or not _NAME.match(str(release)):
            return None
        with self._lock:
            if release in self._clients or self._closed:
                return self._clients.get(release)
            self._next_look[release] = now + self.poll_interval_s
            path = flags_path(self.flags_dir, release)
            if not path.is_file():
                return None
            poll_ms = max(1, round(self.poll_interval_s * 1000))  # flagd 0.5 polls the file every deadline_ms
            provider = FlagdProvider(
                resolver_type=ResolverType.FILE, offline_flag_source_path=str(path), deadline_ms=poll_ms
            )
            domain = f"{self._domain}/{release}"
            try:
                api.set_provider_and_wait(provider, domain)  # load now: no request sees a not-yet-ready provider
            except Exception as exc:  # malformed: stays bound with status ERROR; the watcher picks up a fix
                self._fallback(release, "provider_error", f"{path}: {exc}")
            self._providers[release], self._clients[release] = provider, api.get_client(domain)
            return self._clients[release]

    def _fallback(self, release: str, reason: str, detail: Any = "") -> None:
        self._count(reason)
        if reason not in ("no_file", "disabled") and self._throttle.allow((release, reason)):
            log.warning("flags %s: %s (%s); serving the champion, no shadow", release, reason, detail)
        return None
