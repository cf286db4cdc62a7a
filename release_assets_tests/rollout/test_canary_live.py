"""The canary end to end on 127.0.0.1: a real uvicorn server, real flag files read by flagd, real /metrics.

The versions are real published bundles (so every refusal and the ledger are the real ones); what answers for each
version is a fake release, so a fault can be injected: a chain whose every answer fails its schema, one that adds
50 ms. The monitor reads the server's /metrics over HTTP, exactly as the sensor does by default. Every wait is
bounded, and after each scenario the ledger, the flag file and the aliases are compared.
"""

import itertools
import time

import dagster as dg
import httpx
import pytest

from bench.support.bundles import publish_unit
from bench.support.fakes import FakeRelease
from bench.support.live_canary import SchemaBreaking, live_server
from release_assets.manifest.rollout import RolloutSpec
from release_assets.record.ledger import promote, replay
from release_assets.release.store import LocalReleaseStore
from release_assets.resources.artifact_store import ArtifactStore
from release_assets.rollout.canary import Rollout, start, tick
from release_assets.rollout.metrics_source import MetricsEndpointSource
from release_assets.serving.breaker import BreakerPolicy
from release_assets_tests.rollout.test_canary import Registry, _mirrors_agree
from release_assets_tests.webhooks import webhook_receiver

BAKE_S = 0.3
SPEC = RolloutSpec.model_validate(
    {
        "steps": [20, 50, 100],
        "bake_s": BAKE_S,
        "min_requests": 15,
        "budgets": {
            "error_rate": {"max_increase": 0.02},
            "schema_failure_rate": {"max_increase": 0.02},
            "p99_ms": {"max_increase": 25, "max_ratio": 1.5},
            "escalation_rate": {"max_increase": 0.1},
            "intent_distance": {"max": 0.3},
        },
    }
)
MESSAGES = ["Where is my order?", "I want a refund", "Please cancel my order"]


@pytest.fixture
def published(tmp_path):
    store = LocalReleaseStore(tmp_path / "store")
    versions = [publish_unit(store, "helpdesk", name) for name in ("one", "two", "three")]
    promote(store, "helpdesk", versions[0], "alice", "first champion")
    return store, versions


_users = itertools.count()


@pytest.fixture(autouse=True)
def _same_users_every_run():
    """User ids decide who gets the canary (flag bucketing); random ones made the per-version samples, and so KPIs
    like intent_distance on ~40 requests a side, differ run to run. Numbered from 0 in each test, they do not."""
    global _users
    _users = itertools.count()


def traffic(url: str, n: int) -> dict[str, int]:
    """``n`` requests from distinct users; answers counted by the version that gave them."""
    by_version: dict[str, int] = {}
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(n):
            body = {"message": MESSAGES[i % len(MESSAGES)], "user_id": f"user-{next(_users)}"}
            response = client.post("/v1/helpdesk/predict", json=body)
            version = response.json().get("version", f"status {response.status_code}")
            by_version[version] = by_version.get(version, 0) + 1
    return by_version


def settle() -> None:
    time.sleep(max(BAKE_S, 0.15) + 0.05)  # the flag poll (50 ms) and the bake time


def rollout(store, registry) -> Rollout:
    return Rollout(store, "helpdesk", SPEC, store.root / "flags", lambda: registry)


def test_a_healthy_canary_ramps_to_100_percent_and_becomes_champion(published):
    store, (v1, v2, _) = published
    registry = Registry()
    answers = {v1: FakeRelease(version=v1), v2: FakeRelease(version=v2)}
    with live_server(store, answers) as url:
        source = MetricsEndpointSource([f"{url}/metrics"])
        traffic(url, 30)  # before the canary: the first window must not count it
        r = rollout(store, registry)
        start(r, v2, "bob", "better replies", source=source)
        settle()
        seen = traffic(url, 150)
        assert 10 < seen.get(v2, 0) < 60, seen  # about 20%, sticky per user
        settle()
        assert tick(r, source).action == "advanced"
        _mirrors_agree(r, registry)
        settle()
        traffic(url, 80)
        promoted = tick(r, source)
        assert promoted.action == "promoted", promoted.note
        _mirrors_agree(r, registry)
        deadline = time.monotonic() + 5
        while traffic(url, 5) != {v2: 5} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert traffic(url, 20) == {v2: 20}  # the server follows the ledger's new champion without a restart


@pytest.mark.parametrize("fault", ["schema", "latency"])
def test_a_faulty_canary_is_rolled_back_in_the_first_tick_after_its_bake_time(published, fault):
    store, (v1, v2, _) = published
    registry = Registry()
    faulty = SchemaBreaking(version=v2) if fault == "schema" else FakeRelease(version=v2, delay=0.05)
    with live_server(store, {v1: FakeRelease(version=v1), v2: faulty}) as url:
        source = MetricsEndpointSource([f"{url}/metrics"])
        r = rollout(store, registry)
        if fault == "latency":  # p99 is judged from 100 answers a side: half the traffic to the canary
            r.spec = SPEC.model_copy(update={"steps": [50, 100]})
        start(r, v2, "bob", "risky", source=source)
        time.sleep(0.1)
        traffic(url, 260 if fault == "latency" else 150)
        settle()
        t = tick(r, source)
        assert t.action == "rolled_back", t.note
        breached = {k.name for k in t.analysis.breached}
        assert breached == ({"error_rate", "schema_failure_rate"} if fault == "schema" else {"p99_ms"})
        _mirrors_agree(r, registry)
        time.sleep(0.15)
        assert set(traffic(url, 30)) == {v1}  # everyone back on the champion
    state = replay(store.events("helpdesk"))
    assert (state.champion, state.canary) == (v1, None)


def test_an_open_circuit_breaker_routes_canary_users_to_the_champion_and_rolls_back_while_baking(published):
    store, (v1, v2, _) = published
    breaker = BreakerPolicy(failure_rate=0.5, window=10, min_requests=5, cooldown_s=60)
    with live_server(store, {v1: FakeRelease(version=v1), v2: SchemaBreaking(version=v2)}, breaker) as url:
        source = MetricsEndpointSource([f"{url}/metrics"])
        r = rollout(store, Registry())
        r.spec = SPEC.model_copy(update={"bake_s": 3600})
        start(r, v2, "bob", "risky", source=source)
        time.sleep(0.1)
        seen = traffic(url, 150)
        assert seen.get("status 500", 0) <= 6, seen  # after 5 failures the canary's users get the champion
        t = tick(r, source)
        assert t.action == "rolled_back" and "circuit breaker" in t.note


def test_too_little_traffic_holds_then_a_restart_resumes_at_the_recorded_step(published):
    store, (v1, v2, _) = published
    registry = Registry()
    answers = {v1: FakeRelease(version=v1), v2: FakeRelease(version=v2)}
    with live_server(store, answers) as url:
        source = MetricsEndpointSource([f"{url}/metrics"])
        r = rollout(store, registry)
        start(r, v2, "bob", "quiet", source=source)
        time.sleep(0.1)
        traffic(url, 10)
        settle()
        held = tick(r, source)
        assert held.action == "hold" and "inconclusive" in held.note
        traffic(url, 150)
        advanced = tick(r, source)
        assert advanced.action == "advanced", advanced.note
    # Server and monitor both restart: counters start from zero, the step comes from the ledger.
    with live_server(store, answers) as url:
        source = MetricsEndpointSource([f"{url}/metrics"])
        again = rollout(store, registry)
        assert replay(store.events("helpdesk")).canary.percent == 50
        settle()
        traffic(url, 80)
        t = tick(again, source)
        assert t.action == "promoted", t.note
        _mirrors_agree(again, registry)


def test_the_canary_monitor_sensor_acts_and_records_the_analysis_on_the_rollout_asset(published, monkeypatch):
    from release_assets.manifest import load_manifest
    from release_assets.rollout.sensors import build_canary_monitor
    from release_assets_tests.conftest import REPO

    store, (v1, v2, _) = published
    registry = Registry()
    manifest = load_manifest(REPO / "releases" / "helpdesk.yaml").model_copy(update={"rollout": SPEC})
    sensor = build_canary_monitor([manifest])

    class RegistryResource:
        def get(self):
            return registry

    resources = {"store": ArtifactStore(root=str(store.root)), "registry": RegistryResource()}
    with live_server(store, {v1: FakeRelease(version=v1), v2: SchemaBreaking(version=v2)}) as url:
        monkeypatch.setenv("RELEASE_ASSETS_METRICS_URLS", f"{url}/metrics")
        monkeypatch.delenv("RELEASE_ASSETS_PROMETHEUS_URL", raising=False)
        start(rollout(store, registry), v2, "bob", "via the sensor", source=MetricsEndpointSource([f"{url}/metrics"]))
        time.sleep(0.1)
        traffic(url, 150)
        settle()
        with dg.build_sensor_context(resources=resources) as context:
            result = sensor.evaluate_tick(context)  # the daemon's path
    observation, check = result.asset_events
    assert observation.asset_key == dg.AssetKey(["helpdesk", "rollout"])
    assert observation.metadata["action"].value == "rolled_back"
    assert observation.metadata["canary_schema_failure_rate"].value == 1.0
    assert (check.check_name, check.passed) == ("canary_budgets", False)
    assert "schema_failure_rate" in check.description
    assert replay(store.events("helpdesk")).canary is None


def test_the_sensor_alerts_an_open_circuit_once_and_posts_the_rollback_to_the_webhook(published, monkeypatch):
    from release_assets.manifest import load_manifest
    from release_assets.rollout.sensors import build_canary_monitor
    from release_assets_tests.conftest import REPO

    store, (v1, v2, _) = published
    registry = Registry()
    spec = SPEC.model_copy(update={"bake_s": 3600})  # only the breaker can end this canary now
    sensor = build_canary_monitor(
        [load_manifest(REPO / "releases" / "helpdesk.yaml").model_copy(update={"rollout": spec})]
    )

    class RegistryResource:
        def get(self):
            return registry

    resources = {"store": ArtifactStore(root=str(store.root)), "registry": RegistryResource()}
    breaker = BreakerPolicy(failure_rate=0.5, window=10, min_requests=5, cooldown_s=600)
    answers = {v1: FakeRelease(version=v1), v2: SchemaBreaking(version=v2)}
    with webhook_receiver() as (hook, received), live_server(store, answers, breaker) as url:
        monkeypatch.setenv("RELEASE_ASSETS_METRICS_URLS", f"{url}/metrics")
        monkeypatch.setenv("RELEASE_ASSETS_GATE_WEBHOOK", hook)
        monkeypatch.delenv("RELEASE_ASSETS_PROMETHEUS_URL", raising=False)
        at_start = MetricsEndpointSource([f"{url}/metrics"])
        start(
            Rollout(store, "helpdesk", spec, store.root / "flags", lambda: registry),
            v2,
            "bob",
            "breaker",
            source=at_start,
        )
        time.sleep(0.1)
        traffic(url, 60)
        with dg.build_sensor_context(resources=resources) as context:
            first = sensor.evaluate_tick(context)
            again = sensor.evaluate_tick(context)  # same open circuit, no canary left: no second alert
    events = [p["event"] for p in received]
    assert events == ["circuit_open", "rolled_back"], received
    assert received[0]["version"] == v2 and "circuit breaker open" in received[0]["text"]
    assert received[1]["canary_version"] == v2 and "circuit breaker" in received[1]["text"]
    assert first.asset_events[0].metadata["action"].value == "rolled_back"
    assert again.asset_events[0].metadata["action"].value == "idle"
    assert replay(store.events("helpdesk")).canary is None
