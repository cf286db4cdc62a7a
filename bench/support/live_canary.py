"""A canary on a live server: the champion follows the ledger and the canary the flag file, as `serve` does, with
fake releases answering for the versions so a fault can be injected (test_canary_live.py, bench/canary.py)."""

from __future__ import annotations

from contextlib import contextmanager

from bench.support.fakes import FakeRelease
from bench.support.live import serving
from release_assets.record.ledger import replay
from release_assets.serving.app import create_app
from release_assets.serving.breaker import BreakerPolicy, Breakers
from release_assets.serving.champion_watch import ChampionWatch
from release_assets.serving.flag_source import store_flags
from release_assets.serving.flags import FlagRouter
from release_assets.serving.loader import StepFailed
from release_assets.serving.metrics import ServingMetrics


class SchemaBreaking(FakeRelease):
    """A chain whose reply step's output never validates: every answer is a 500 counted as a schema failure."""

    def predict(self, request, **kwargs):
        raise StepFailed("reply: output is not valid JSON", {"reply": "not valid JSON"})


@contextmanager
def live_server(store, answers: dict, breaker: BreakerPolicy | None = None):
    """A server whose champion follows the ledger and whose canary follows the flag file, as `serve` does."""
    served = {"helpdesk": answers[replay(store.events("helpdesk")).champion]}
    router = FlagRouter(store_flags(store), poll_interval_s=0.05)
    watch = ChampionWatch(lambda r: replay(store.events(r)).champion, lambda r, v: answers[v], served, 0.05).start()
    app = create_app(
        served,
        router=router,
        loader=lambda release, version: answers[version],
        metrics=ServingMetrics(),
        breakers=Breakers({"helpdesk": breaker}) if breaker else None,
    )
    try:
        with serving(app) as url:
            yield url
    finally:
        watch.close()
        router.close()
