"""Assemble what ``release-assets serve`` runs: the champions, verified; flags, shadow, traces and metrics.

Plain Python: the CLI hands this the release store and settings and runs the app under uvicorn. Loading a
champion that fails (a tampered bundle, no champion yet) does not stop the process: it serves the releases that
loaded, and ``/readyz`` answers 503 naming the one that did not, until it is fixed and the server restarted.
"""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from release_assets.record.ledger import replay
from release_assets.release.store import ReleaseStore
from release_assets.serving import loader
from release_assets.serving.breaker import Breakers
from release_assets.serving.breaker_board import BreakerBoard
from release_assets.serving.champion_watch import ChampionWatch
from release_assets.serving.feedback import DEFAULT_CAPACITY, FeedbackBook
from release_assets.serving.shadow import ShadowPool
from release_assets.serving.shadow_store import as_shadow_pairs
from release_assets.serving.version_keeper import VersionKeeper

if TYPE_CHECKING:
    from release_assets.provenance.keys import Trust
    from release_assets.serving.admission import AdmissionPolicy
    from release_assets.serving.breaker import BreakerPolicy
    from release_assets.serving.flag_source import FlagSource
    from release_assets.serving.shadow_store import ShadowPairs

log = logging.getLogger(__name__)


@dataclass
class Server:
    app: Any
    loaded: dict[str, Any]  # release -> LoadedRelease, or None when its champion failed to load
    problems: dict[str, str]  # release -> why it is not ready
    closers: list[Any] = field(default_factory=list)

    def close(self) -> None:
        """Stop the shadow workers (bounded), the flag provider and the trace exporters, in that order; once (the
        app's shutdown closes it, and ``serve`` again after uvicorn returns)."""
        closers, self.closers = self.closers, []
        for close in closers:
            try:
                close()
            except Exception:  # shutting down: report, never mask the others
                log.exception("while shutting the server down")


def build_server(
    store: ReleaseStore,
    releases: list[str],
    *,
    cache_dir: Path,
    flags_dir: Path | FlagSource | None,
    trace_path: Path | None,
    token: str | None = None,
    max_body: int = 64 * 1024,
    shadow_queue: int = 256,
    shadow_log_dir: Path | ShadowPairs | None = None,
    breaker_policies: dict[str, BreakerPolicy] | None = None,
    champion_poll_s: float | None = 2.0,
    admission: AdmissionPolicy | None = None,
    versions_poll_s: float = 1.0,
    trust: Trust | None = None,
    breaker_board: Path | None = None,
    feedback_capacity: int = DEFAULT_CAPACITY,
    feedback_journal: Path | None = None,
) -> Server:
    """``breaker_policies``: release -> circuit breaker policy; a release without one has no breaker.
    ``champion_poll_s``: how often the ledger is read to follow promotions and rollbacks (None: never).
    ``admission``: in-flight limit and rate per client (admission.AdmissionPolicy; None: its defaults).
    ``versions_poll_s``: how often the versions the flag files name are preloaded, and the others unloaded.
    ``trust``: serve only units signed by one of its keys (``serve --signed-only``), every version loaded.
    ``breaker_board``: a folder the workers of one server share, so a breaker one opens is open for all.
    ``feedback_capacity``: answers each worker remembers for feedback; ``feedback_journal``: a folder the workers
    share, so feedback reaching another worker than the answer still finds it (serving/feedback.py)."""
    from release_assets.serving.app import create_app
    from release_assets.serving.flags import FlagRouter
    from release_assets.serving.metrics import ServingMetrics
    from release_assets.serving.traces import Tracing

    loaded: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for release in releases:
        try:
            loaded[release] = loader.load_release(store, release, cache_dir=cache_dir, trust=trust)
        except Exception as exc:  # each failure names its file or reason; the others still serve
            loaded[release], problems[release] = None, f"{type(exc).__name__}: {exc}"
            log.error("%s: champion not loaded: %s", release, exc)

    # Requests run concurrently in the threadpool: one intra-op thread per request, not a pool per request that
    # oversubscribes two cores and turns into tail latency. (Only if a model loaded torch: never import it here.)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    versions: dict[tuple[str, str], Any] = {(r, x.version): x for r, x in loaded.items() if x is not None}
    lock = threading.Lock()

    def load_version(release: str, version: str):
        """Canary and shadow versions, loaded (and verified) once, then kept while a flag names them."""
        with lock:
            if (release, version) not in versions:
                versions[(release, version)] = loader.load_release(
                    store, release, version=version, cache_dir=cache_dir, trust=trust
                )
            return versions[(release, version)]

    def unload(keep: set[tuple[str, str]]) -> list[tuple[str, str]]:
        """Drop every loaded version not in ``keep`` from the app's cache and this one: nothing refers to it."""
        with lock:
            gone = [key for key in versions if key not in keep]
            for key in gone:
                del versions[key]
        return sorted({*gone, *app.state.versions.retire(keep)})

    def weights() -> dict[str, tuple[str, int] | None]:
        # The router's applied flags, its files looked at again at every scrape (at most once per poll interval):
        # the gauge shows what routes now, never the weight of a file the router refused.
        return {r: router.canary_weight(r) if router is not None else None for r in releases}

    metrics = ServingMetrics(weights=weights)
    # Flag files are validated before they route: weights, variants, and versions published for that release.
    router = (
        FlagRouter(flags_dir, known_versions=store.versions, on_file=metrics.observe_flag_file)
        if flags_dir is not None
        else None
    )
    tracing = Tracing(jsonl_path=trace_path)

    # ``shadow_log_dir``: live pairs kept for the shadow_report asset (a folder, or segments in the S3 store: see
    # serving/shadow_store.py), the user's message redacted as in traces.
    shadow_log = (
        as_shadow_pairs(shadow_log_dir).writer(tracing.redactor.text, metrics.observe_shadow_not_kept)
        if shadow_log_dir is not None
        else None
    )

    def on_pair(pair: dict) -> None:
        metrics.observe_pair(pair)
        tracing.shadow_span(pair)
        if shadow_log is not None:
            shadow_log.append(pair)

    shadow = ShadowPool(
        lambda release, version, request: load_version(release, version).predict(request, variant="shadow"),
        on_pair,
        max_queue=shadow_queue,
        embedding_model=lambda release, version: load_version(release, version).embedding_model,
    )

    def ready() -> tuple[bool, Any]:
        waiting = {r: why for r, why in problems.items() if loaded.get(r) is None}  # the watch may have fixed one
        if waiting:
            return False, {"not_ready": waiting}
        return True, {release: x.version for release, x in loaded.items()}

    app = create_app(
        loaded,
        router=router,
        shadow=shadow,
        tracing=tracing if tracing.enabled else None,
        metrics=metrics,
        token=token,
        max_body=max_body,
        ready=ready,
        loader=load_version,
        breakers=Breakers(breaker_policies, board=BreakerBoard(breaker_board) if breaker_board else None)
        if breaker_policies
        else None,
        admission=admission,
        feedback=FeedbackBook(feedback_capacity, feedback_journal),
    )
    closers = [shadow.close, *([shadow_log.close] if shadow_log else []), *([router.close] if router else [])]
    closers.append(tracing.shutdown)
    if router is not None:
        keeper = VersionKeeper(loaded, router.routing, app.state.versions.preload, unload, versions_poll_s)
        closers.insert(0, keeper.start().close)
    if champion_poll_s:
        watch = ChampionWatch(lambda r: replay(store.events(r)).champion, load_version, loaded, champion_poll_s)
        closers.insert(0, watch.start().close)
    return Server(app, loaded, problems, closers)
