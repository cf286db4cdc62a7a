"""Champion/canary routing and shadow sampling through OpenFeature, with flags in flagd's file format.

One file per release, ``<store>/flags/<release>.flagd.json``, so each release has one writer (promoting one release
never rewrites another's flags) and a broken file affects one release. It holds two string flags:
``<release>.route`` (variants ``champion``/``canary`` -> version) and ``<release>.shadow`` (``off`` -> "", ``on`` ->
the shadow version). Both split with flagd's ``fractional`` on murmur3(flag key + targeting key): a key keeps its
variant while the file is unchanged, the two flags sample independently, and raising the canary share only moves
keys champion -> canary (the canary bucket is listed last, so it grows downwards).

A file is trusted only once :func:`validate_flag_document` accepted it: whole-number weights from 0 that sum to
100, exactly the known variants, versions published for that release. flagd itself would follow weights of -95 and
195 (every key to the canary), so nothing reaches flagd's evaluator without that check.

:class:`FlagRouter` reads the flags only through the OpenFeature client: one provider per release, each bound to
its own OpenFeature domain (the provider registry is process-global), evaluating with flagd's own in-process
evaluator (``FlagdCore``, what flagd's file provider evaluates with; same bucketing). Instead of flagd's file
watcher, which loads whatever the file says, the router looks at the file at most once per ``poll_interval_s``
(when it routes a request or the metrics are scraped) and applies a changed file only if it validates; an invalid
one keeps the last good flags, and is logged and counted once. A key's answer is kept for as long as the document
that gave it applies (the same key always gets the same variant from one document), so the client evaluates each
key once per document: flagd's JSON-logic evaluation was a third of a served iris request's CPU.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openfeature import api
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata
from openfeature.provider.no_op_provider import NoOpProvider

from release_assets.manifest import release_name_problem
from release_assets.release.store import LocalReleaseStore, ReleaseStore, StoreError
from release_assets.serving.flag_error import FlagError
from release_assets.serving.flag_source import (
    SUFFIX,
    UNCHANGED,
    FlagSource,
    FlagSourceUnavailable,
    as_flag_source,
    store_flags,
    write_file,
)
from release_assets.serving.flag_source import (
    flags_path as flags_path,  # re-exported: readers of flag files find it here
)
from release_assets.serving.throttle import Throttle

CHAMPION, CANARY = "champion", "canary"
OFF, ON = "off", "on"
_VERSION = re.compile(r"^[0-9a-f]{16}$")
# The bucket key flag_document writes; flagd's shorthand (no expression) means the same today.
_BUCKET = {"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]}
_TOP_KEYS = ("$schema", "metadata", "flags")
_FLAG_KEYS = ("state", "variants", "defaultVariant", "targeting", "metadata")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlagRouting:
    """What a valid flag document routes. ``canary``/``shadow``: the version of the ``canary``/``on`` variant
    (None: no such variant); ``canary_percent``/``shadow_percent``: the share of keys it gets now (0 while its
    flag is disabled); ``route_enabled``: False when the route flag is switched off (everyone on the champion)."""

    release: str
    champion: str
    canary: str | None = None
    canary_percent: int = 0
    shadow: str | None = None
    shadow_percent: int = 0
    route_enabled: bool = True

    @property
    def canary_weight(self) -> tuple[str, int] | None:
        """``(canary version, percent)`` for the ``canary_weight`` gauge; None without a canary or while the route
        flag is disabled."""
        return (self.canary, self.canary_percent) if self.canary is not None and self.route_enabled else None

    def describe(self) -> str:
        canary = f"canary {self.canary} at {self.canary_percent}%" if self.canary_weight else "no canary"
        shadow = f"shadow {self.shadow} at {self.shadow_percent}%" if self.shadow_percent else "no shadow"
        return f"{canary}, {shadow}"


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
    problem = release_name_problem(release)
    if problem:
        raise FlagError(f"release: {problem}")
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
    """Write ``document`` whole (temp file + rename), after flagd's own parser and, for a ``<release>.flagd.json``,
    :func:`validate_flag_document` have accepted it."""
    path = Path(path)
    write_file(path, _checked_text(path, document))


def publish_flags(flags: Path | FlagSource, release: str, document: dict[str, Any]) -> str:
    """Replace ``release``'s document in ``flags`` (a folder, or the store's source) with ``document``, checked as
    :func:`write_flags` checks a file; returns where it went."""
    source = as_flag_source(flags)
    where = source.where(release)
    source.write(release, _checked_text(Path(f"{release}{SUFFIX}"), document, where))
    return where


def current_flags(flags: Path | FlagSource, release: str) -> Any:
    """``release``'s document in ``flags`` as parsed JSON, unchecked (to compare with what should be there); None
    when there is none or it is not JSON."""
    try:
        found = as_flag_source(flags).read(release, None)
        return json.loads(found.raw) if found is not None and found is not UNCHANGED else None
    except (OSError, FlagSourceUnavailable, ValueError):
        return None


def _checked_text(path: Path, document: dict[str, Any], where: str | None = None) -> str:
    """``document`` as the text to write, once flagd's parser and the router's validation accept it."""
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    path = Path(path)
    shown = where or path
    try:
        FlagdCore().set_flags(text)  # refuse a file the provider would reject, instead of discovering it live
    except Exception as exc:
        raise FlagError(f"{shown}: not a flagd document flagd accepts ({exc})") from None
    owner = path.name.removesuffix(SUFFIX)  # the router looks up <release>.route in <release>.flagd.json only
    if path.name.endswith(SUFFIX) and any(not key.startswith(f"{owner}.") for key in document["flags"]):
        raise FlagError(f"{shown}: holds flags {sorted(document['flags'])}, not {owner}.route/{owner}.shadow")
    if path.name.endswith(SUFFIX):  # what the router would refuse is never written (versions: the writer's check)
        try:
            validate_flag_document(json.loads(text), owner)
        except FlagError as exc:
            raise FlagError(f"{shown}: {exc}", exc.reason) from None
    return text


def _published(field: str, value: Any, release: str, known_versions: Collection[str] | None) -> str:
    if not isinstance(value, str) or not _VERSION.match(value):
        raise FlagError(f"{field}: {value!r} is not a release version (16 lower-case hex digits)", "version")
    if known_versions is not None and value not in known_versions:
        listed = sorted(known_versions)
        shown = ", ".join(listed[-5:]) + (f" and {len(listed) - 5} more" if len(listed) > 5 else "")
        raise FlagError(
            f"{field}: {value} is not a published version of {release} (published: {shown or 'none'})", "version"
        )
    return value


def _check_split(where: str, targeting: Any, names: list[str]) -> dict[str, int] | None:
    """The weights of a ``fractional`` split over exactly ``names``, in that order, summing to 100; None without
    targeting (every key gets the default variant)."""
    if targeting is None or targeting == {}:
        return None
    field = f"{where}.targeting"
    if (
        not isinstance(targeting, dict)
        or list(targeting) != ["fractional"]
        or not isinstance(targeting["fractional"], list)
    ):
        raise FlagError(
            f'{field}: only {{"fractional": [...]}} is supported, not {json.dumps(targeting)[:80]}', "structure"
        )
    field += ".fractional"
    parts = targeting["fractional"]
    buckets = parts[1:] if parts and isinstance(parts[0], dict) else parts
    if buckets is not parts and parts[0] != _BUCKET:
        raise FlagError(
            f"{field}[0]: bucket key {json.dumps(parts[0])}; only {json.dumps(_BUCKET)} is supported", "structure"
        )
    if not all(isinstance(b, list) and len(b) == 2 and isinstance(b[0], str) for b in buckets):
        raise FlagError(f"{field}: every bucket must be [variant, weight], got {json.dumps(buckets)[:80]}", "structure")
    listed = [name for name, _ in buckets]
    if listed != names:
        raise FlagError(
            f"{field}: splits between {listed}; expected {names} (each variant once, in that order: "
            "the last bucket grows downwards, so raising its share only moves keys to it)",
            "variants",
        )
    for name, weight in buckets:
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise FlagError(
                f"{field}: weight of {name!r} is {weight!r}; weights are whole numbers from 0, summing to 100",
                "weights",
            )
    total = sum(weight for _, weight in buckets)
    if total != 100:
        shown = " + ".join(str(weight) for _, weight in buckets)
        raise FlagError(f"{field}: weights {shown} sum to {total}, not 100", "weights")
    return dict(buckets)


def _check_flag(
    release: str, flag: str, data: Any, names: tuple[str, str], known_versions: Collection[str] | None
) -> tuple[Any, str | None, int, bool]:
    """``(first variant's value, second variant's value or None, second variant's share now, enabled)``."""
    where = f"{release}.{flag}"
    if not isinstance(data, dict):
        raise FlagError(f"{where}: {type(data).__name__}, not a JSON object", "structure")
    extra = sorted(set(data) - set(_FLAG_KEYS))
    if extra:
        raise FlagError(f"{where}: unexpected keys {extra} (allowed: {', '.join(_FLAG_KEYS)})", "structure")
    state = data.get("state")
    if state not in ("ENABLED", "DISABLED"):
        raise FlagError(f"{where}.state: {state!r} is not ENABLED or DISABLED", "structure")
    variants = data.get("variants")
    if not isinstance(variants, dict):
        raise FlagError(f"{where}.variants: {type(variants).__name__}, not a JSON object", "structure")
    first, second = names
    if first not in variants or set(variants) - set(names):
        raise FlagError(
            f"{where}.variants: {sorted(variants)}; expected {first!r} and optionally {second!r}, nothing else",
            "variants",
        )
    for name, value in variants.items():
        if flag == "shadow" and name == OFF:
            if value != "":
                raise FlagError(f'{where}.variants.{OFF}: {value!r}; the {OFF!r} variant is "" (no shadow)', "variants")
        else:
            _published(f"{where}.variants.{name}", value, release, known_versions)
    default = data.get("defaultVariant")
    if not isinstance(default, str) or default not in variants:
        raise FlagError(
            f"{where}.defaultVariant: {default!r} is not one of its variants {sorted(variants)}", "variants"
        )
    weights = _check_split(where, data.get("targeting"), [n for n in names if n in variants])
    share = (100 if default == second else 0) if weights is None else weights.get(second, 0)
    enabled = state == "ENABLED"
    return variants[first], variants.get(second), share if enabled else 0, enabled


def validate_flag_document(document: Any, release: str, known_versions: Collection[str] | None = None) -> FlagRouting:
    """What ``document`` (a parsed flag file) routes for ``release``, or :class:`FlagError` naming the field.

    Valid means what :func:`flag_document` writes, and nothing flagd would read differently: exactly the flags
    ``<release>.route`` (variants ``champion`` and optionally ``canary``) and ``<release>.shadow`` (``off`` -> ""
    and optionally ``on``), state ENABLED or DISABLED, a default among the variants, and either no targeting or one
    ``fractional`` split over exactly those variants (off/champion first) with whole-number weights from 0 summing
    to 100. Every version is 16 hex digits and, when ``known_versions`` is given, published for ``release``.
    """
    if not isinstance(document, dict):
        raise FlagError(f"document: {type(document).__name__}, not a JSON object", "structure")
    extra = sorted(set(document) - set(_TOP_KEYS))
    if extra:
        raise FlagError(f"document: unexpected keys {extra} (allowed: {', '.join(_TOP_KEYS)})", "structure")
    metadata = document.get("metadata", {})
    if not isinstance(metadata, dict) or metadata.get("release", release) != release:
        found = metadata.get("release") if isinstance(metadata, dict) else metadata
        raise FlagError(f"metadata.release: {found!r}; this is {release}'s flag file", "structure")
    flags = document.get("flags")
    expected = [f"{release}.route", f"{release}.shadow"]
    if not isinstance(flags, dict) or sorted(flags) != expected:
        found = sorted(flags) if isinstance(flags, dict) else type(flags).__name__
        raise FlagError(f"flags: {found}; expected exactly {expected}", "structure")
    champion, canary, canary_percent, route_on = _check_flag(
        release, "route", flags[expected[0]], (CHAMPION, CANARY), known_versions
    )
    _, shadow, shadow_percent, _ = _check_flag(release, "shadow", flags[expected[1]], (OFF, ON), known_versions)
    try:  # e.g. flag metadata that is not a plain value: flagd's own parser has the last word
        FlagdCore().set_flags(json.dumps(document))
    except Exception as exc:
        raise FlagError(f"document: flagd refuses it ({exc})", "flagd") from None
    return FlagRouting(release, champion, canary, canary_percent, shadow, shadow_percent, route_on)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def parse_flag_file(
    path: Path | str, raw: bytes, release: str, known_versions: Collection[str] | None = None
) -> tuple[FlagRouting, dict[str, Any]]:
    """``(routing, document)`` from a flag file's bytes; :class:`FlagError` naming ``path`` and the field."""
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise FlagError(f"{path}: not a readable flag file: not UTF-8 ({exc})", "malformed") from None
    except (ValueError, RecursionError) as exc:
        raise FlagError(f"{path}: not a readable flag file: not JSON ({exc})", "malformed") from None
    try:
        return validate_flag_document(document, release, known_versions), document
    except FlagError as exc:
        raise FlagError(f"{path}: {exc}", exc.reason) from None


def read_flag_file(path: Path, release: str, known_versions: Collection[str] | None = None) -> FlagRouting | None:
    """What ``release``'s flag file at ``path`` routes; None when there is no file; :class:`FlagError` naming the
    file and the field when it is not a valid flag document."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FlagError(f"{path}: not a readable flag file ({exc})", "unreadable") from None
    return parse_flag_file(path, raw, release, known_versions)[0]


def canary_version(store: ReleaseStore, release: str) -> str | None:
    """The version the release's canary variant serves (whatever its share), or None. For loading the version,
    not for routing: routing goes through :class:`FlagRouter`. A file that does not validate (against the store's
    published versions) is a :class:`StoreError` naming the file and the field."""
    source = as_flag_source(store_flags(store))
    try:
        found = source.read(release, None)
        if found is None or found is UNCHANGED:
            return None
        routing = parse_flag_file(source.where(release), found.raw, release, store.versions(release))[0]
    except (FlagError, OSError, FlagSourceUnavailable) as exc:
        raise StoreError(str(exc)) from None
    return routing.canary if routing is not None else None


class _ValidatedFlags(AbstractProvider):
    """An OpenFeature provider over flagd's own evaluator, which the router loads with validated documents only
    (flagd's file provider is this evaluator plus a file watcher that would load any document)."""

    def __init__(self, core: FlagdCore) -> None:
        super().__init__()
        self.core = core

    @staticmethod
    def load(document: dict[str, Any]) -> FlagdCore:
        """A new evaluator holding ``document``: swapped in whole, so an evaluation sees the old flags or the new."""
        core = FlagdCore()
        core.set_flags(json.dumps(document))  # a copy: flagd's parser edits the dict it is given
        return core

    def get_metadata(self) -> Metadata:
        return Metadata(name="release_assets validated flagd")

    def resolve_boolean_details(
        self, flag_key: str, default_value: bool, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[bool]:
        return self.core.resolve_boolean_value(flag_key, default_value, evaluation_context)

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self.core.resolve_string_value(flag_key, default_value, evaluation_context)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self.core.resolve_integer_value(flag_key, default_value, evaluation_context)

    def resolve_float_details(
        self, flag_key: str, default_value: float, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[float]:
        return self.core.resolve_float_value(flag_key, default_value, evaluation_context)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return self.core.resolve_object_value(flag_key, default_value, evaluation_context)


@dataclass
class _Release:
    """One release's flags as the router holds them."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    next_look: float = 0.0
    seen: Hashable | None = None  # the document's tag when last read (the file's stat, the object's ETag)
    good: FlagRouting | None = None  # the last document that validated: what routes now (None: no flags)
    rejected: tuple[bytes, str] | None = None  # (bytes, error) of the file on disk while it is not applied
    provider: _ValidatedFlags | None = None
    client: Any = None
    # (flag, key) -> what the client answered, for the document applied now: a key keeps its variant while the
    # document is unchanged, so it is evaluated once per document, not per request. Replaced by an empty dict
    # whenever a document applies; bounded by emptying it when full.
    answers: dict[tuple[str, str], Any] = field(default_factory=dict)


class FlagRouter:
    """Answers "which version serves this key" and "shadow this request?" per release; never raises on a request.

    A release's file is looked at no more often than once per ``poll_interval_s``, on a request or a scrape
    (:meth:`canary_weight`); a changed file is applied only if :func:`validate_flag_document` accepts it (with
    ``known_versions(release)``, the published versions, when given). A file that does not is logged once, counted
    once in :attr:`errors` and reported to ``on_file(release, reason)`` (``on_file(release, None)`` when a file
    applies or is removed); the last good flags keep routing, or the champion / no shadow if there were none. No
    file means no flags: the champion, no shadow. Fallbacks on a request (no file, no key, a disabled flag...) are
    counted in :attr:`counts`.
    """

    QUIET = ("no_file", "disabled", "rejected")  # expected, or already logged when the file was rejected
    MAX_ANSWERS = 65536  # evaluations remembered per release (keys are user ids or body hashes)

    def __init__(
        self,
        flags_dir: Path | FlagSource,
        poll_interval_s: float = 0.5,
        known_versions: Callable[[str], Collection[str]] | None = None,
        on_file: Callable[[str, str | None], None] | None = None,
    ) -> None:
        if not poll_interval_s >= 0.001:
            raise ValueError(f"poll_interval_s: {poll_interval_s!r}; at least 0.001 (one look a millisecond)")
        # A folder of flag files, or a FlagSource (the S3 store's flags/ objects): looked at the same way.
        self.source, self.poll_interval_s = as_flag_source(flags_dir), poll_interval_s
        self.known_versions, self.on_file = known_versions, on_file
        self._counts: Counter[str] = Counter()
        self._errors: Counter[tuple[str, str]] = Counter()
        self._domain = f"release_assets.serving.flags/{uuid.uuid4().hex[:12]}"  # unique: the registry is global
        self._releases: dict[str, _Release] = {}
        self._lock, self._count_lock, self._closed = threading.Lock(), threading.Lock(), False
        self._throttle = Throttle()

    @property
    def counts(self) -> dict[str, int]:
        """``evaluations`` and, per fallback reason, how many answers fell back to the champion / no shadow."""
        with self._count_lock:
            return dict(self._counts)

    @property
    def errors(self) -> dict[tuple[str, str], int]:
        """``(release, reason)`` -> flag documents rejected (each bad document once, however long it stays)."""
        with self._count_lock:
            return dict(self._errors)

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

    def routing(self, release: str) -> FlagRouting | None:
        """The flags that route ``release`` now (the last valid document, looked at again if due); None: none."""
        state = self._look(release)
        return state.good if state is not None else None

    def canary_weight(self, release: str) -> tuple[str, int] | None:
        """``(canary version, percent)`` as applied now, for the ``canary_weight`` gauge; never a rejected file's."""
        routing = self.routing(release)
        return routing.canary_weight if routing is not None else None

    def close(self) -> None:
        """Unbind every provider; later requests answer the champion."""
        with self._lock:
            self._closed = True
            releases, self._releases = self._releases, {}
        for release, state in releases.items():
            if state.provider is not None:
                api.set_provider(NoOpProvider(), f"{self._domain}/{release}")  # no unbind API in 0.10

    def _evaluate(self, release: str, flag: str, key: str):
        self._count("evaluations")
        try:
            return self._resolve(release, flag, key)
        except Exception as exc:  # e.g. an unreadable flags folder: never into a request
            return self._fallback(release, "internal_error", repr(exc))

    def _resolve(self, release: str, flag: str, key: str):
        if not isinstance(key, str) or not key:  # flagd cannot bucket an empty key (and logs each time)
            return self._fallback(release, "no_key", "empty targeting key")
        state = self._look(release)
        if state is None or state.good is None or state.client is None:
            return self._fallback(release, "rejected" if state is not None and state.rejected else "no_file")
        answers = state.answers  # taken before evaluating: an answer of a replaced document lands in its old dict
        details = answers.get((flag, key))
        if details is None:
            details = state.client.get_string_details(f"{release}.{flag}", "", EvaluationContext(targeting_key=key))
            if len(answers) >= self.MAX_ANSWERS:
                answers.clear()
            answers[(flag, key)] = details
        if details.error_code is not None:
            return self._fallback(release, f"flag_error:{details.error_code.value}", details.error_message)
        if details.reason == Reason.DISABLED:  # an operator switched the flag off: champion / no shadow, on purpose
            return self._fallback(release, "disabled")
        return details

    def _look(self, release: str) -> _Release | None:
        """The release's flags, after looking at its file if the last look is a poll interval old."""
        if self._closed or release_name_problem(release):
            return None
        state = self._releases.get(release)
        if state is None:
            with self._lock:
                if self._closed:
                    return None
                state = self._releases.setdefault(release, _Release())
        if time.monotonic() < state.next_look:
            return state
        with state.lock:
            if time.monotonic() >= state.next_look and not self._closed:
                try:
                    self._read(release, state)
                finally:
                    state.next_look = time.monotonic() + self.poll_interval_s
        return state

    def _read(self, release: str, state: _Release) -> None:
        path = self.source.where(release)
        try:
            found = self.source.read(release, state.seen)
        except FlagSourceUnavailable as exc:  # the store, not the document: keep what routes, look again later
            if self._throttle.allow((release, "source")):
                log.warning("flags %s: %s; keeping the flags as they are", release, exc)
            return
        except OSError as exc:
            return self._reject(release, state, None, b"", FlagError(f"{path}: not readable ({exc})", "unreadable"))
        if found is UNCHANGED:
            return
        if found is None:
            if state.seen is not None or state.rejected is not None:
                log.info("flags %s: %s removed: no flags, serving the champion, no shadow", release, path)
                state.seen, state.good, state.rejected = None, None, None
                self._report(release, None)
            return
        seen, raw = found.tag, found.raw
        try:
            known = set(self.known_versions(release)) if self.known_versions is not None else None
        except Exception as exc:  # the store, not the file: keep what routes, and look again next interval
            if self._throttle.allow((release, "known_versions")):
                log.warning(
                    "flags %s: cannot list the published versions (%r); keeping the flags as they are", release, exc
                )
            return
        try:
            routing, document = parse_flag_file(path, raw, release, known)
            core = _ValidatedFlags.load(document)
        except FlagError as exc:
            return self._reject(release, state, seen, raw, exc)
        except Exception as exc:  # flagd's parser refused what the validation let through
            return self._reject(release, state, seen, raw, FlagError(f"{path}: flagd refused it ({exc})", "flagd"))
        if state.provider is None:
            provider = _ValidatedFlags(core)
            domain = f"{self._domain}/{release}"
            api.set_provider_and_wait(provider, domain)
            state.provider, state.client = provider, api.get_client(domain)
        else:
            state.provider.core = core
        state.answers = {}  # after the new evaluator is in: no answer of the old document is kept
        changed = routing != state.good or state.rejected is not None
        state.seen, state.good, state.rejected = seen, routing, None
        if changed:
            log.info("flags %s: applied %s: %s", release, path, routing.describe())
        self._report(release, None)

    def _reject(self, release: str, state: _Release, seen, raw: bytes, error: FlagError) -> None:
        state.seen = seen
        if state.rejected == (raw, str(error)):  # the same bad document again (touched, or unreadable again)
            return
        state.rejected = (raw, str(error))
        with self._count_lock:
            self._errors[(release, error.reason)] += 1
        keeping = (
            f"keeping the last good flags ({state.good.describe()})"
            if state.good is not None
            else "no valid flags before it: serving the champion, no shadow"
        )
        log.warning("flags %s: %s; %s", release, error, keeping)
        self._report(release, error.reason)

    def _report(self, release: str, reason: str | None) -> None:
        if self.on_file is not None:
            try:
                self.on_file(release, reason)
            except Exception:  # metrics must not break routing
                log.exception("reporting the flag file state of %s failed", release)

    def _fallback(self, release: str, reason: str, detail: Any = "") -> None:
        self._count(reason)
        if reason not in self.QUIET and self._throttle.allow((release, reason)):
            log.warning("flags %s: %s (%s); serving the champion, no shadow", release, reason, detail)
        return None
