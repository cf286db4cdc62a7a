"""A canary across machines: two servers, each in its own process with its own client of one S3 release store (moto
on 127.0.0.1), route by the flag document in that store; the monitor reads both servers' /metrics.

As in test_canary_live, the versions are real published bundles and what answers for each is a fake release: the
canary's every answer fails its schema (a 500), so it is worse and must be rolled back. Every wait is bounded and
the server processes are stopped (and killed if they do not stop) at the end.
"""

import multiprocessing
import time
from contextlib import contextmanager

import httpx

from bench.support.bundles import publish_unit
from bench.support.s3_moto import moto_s3, store_client
from release_assets.manifest.rollout import RolloutSpec
from release_assets.record.ledger import promote, replay
from release_assets.release.s3_store import S3ReleaseStore
from release_assets.rollout.canary import Rollout, start, tick
from release_assets.rollout.metrics_source import MetricsEndpointSource
from release_assets.serving.flag_source import store_flags
from release_assets.serving.flags import current_flags
from release_assets_tests.rollout.test_canary import Registry, _mirrors_agree

BUCKET, PREFIX = "releases", "team/release_assets"
BAKE_S = 0.3
SPEC = RolloutSpec.model_validate(
    {
        "steps": [50, 100],
        "bake_s": BAKE_S,
        "min_requests": 15,
        "budgets": {"error_rate": {"max_increase": 0.02}, "schema_failure_rate": {"max_increase": 0.02}},
    }
)
USERS = [f"user-{i}" for i in range(60)]


def _store(endpoint: str) -> S3ReleaseStore:
    return S3ReleaseStore(store_client(endpoint), BUCKET, PREFIX)


def _serve(endpoint: str, champion: str, canary: str, urls, stop) -> None:
    """One server process: its own store client, the champion from the ledger, the canary from the store's flags."""
    from bench.support.fakes import FakeRelease
    from bench.support.live_canary import SchemaBreaking, live_server

    answers = {champion: FakeRelease(version=champion), canary: SchemaBreaking(version=canary)}
    with live_server(_store(endpoint), answers) as url:
        urls.put(url)
        stop.wait(120)  # bounded even if the test never says stop


@contextmanager
def two_servers(endpoint: str, champion: str, canary: str):
    ctx = multiprocessing.get_context("spawn")
    urls, stop = ctx.Queue(), ctx.Event()
    processes = [ctx.Process(target=_serve, args=(endpoint, champion, canary, urls, stop)) for _ in range(2)]
    for process in processes:
        process.start()
    try:
        yield [urls.get(timeout=30) for _ in processes]
    finally:
        stop.set()
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)


def answers(url: str, users: list[str]) -> dict[str, str]:
    """user -> the version that answered, or ``status N`` for an error."""
    seen = {}
    with httpx.Client(base_url=url, timeout=10) as client:
        for user in users:
            response = client.post("/v1/helpdesk/predict", json={"message": "Where is my order?", "user_id": user})
            seen[user] = response.json().get("version") or f"status {response.status_code}"
    return seen


def served(url: str) -> set[str]:
    """What answered any of the users."""
    return set(answers(url, USERS).values())


def wait_for(condition, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s} s"
        time.sleep(0.05)


def test_two_servers_on_one_s3_store_route_alike_and_a_worse_canary_is_rolled_back_from_both():
    with moto_s3(BUCKET) as (endpoint, _):
        store = _store(endpoint)
        v1, v2 = (publish_unit(store, "helpdesk", name) for name in ("one", "two"))
        promote(store, "helpdesk", v1, "alice", "first champion")
        with two_servers(endpoint, v1, v2) as (url_a, url_b):
            assert served(url_a) == served(url_b) == {v1}  # no flags: the champion only
            source = MetricsEndpointSource([f"{url_a}/metrics", f"{url_b}/metrics"])
            registry = Registry()
            r = Rollout(store, "helpdesk", SPEC, store_flags(store), lambda: registry)
            start(r, v2, "bob", "risky", source=source)
            assert current_flags(r.flags_dir, "helpdesk")["flags"]["helpdesk.route"]["variants"]["canary"] == v2

            # Each server reads the document from the store on its own; then the same users get the same variant.
            canary_answers = {"a": 0, "b": 0}

            def both_route_to_the_canary() -> bool:
                seen = {name: answers(url, USERS[:10]) for name, url in (("a", url_a), ("b", url_b))}
                for name, by_user in seen.items():
                    canary_answers[name] += sum(v == "status 500" for v in by_user.values())
                return all("status 500" in by_user.values() for by_user in seen.values())

            wait_for(both_route_to_the_canary)
            on_a, on_b = answers(url_a, USERS), answers(url_b, USERS)
            assert on_a == on_b
            assert set(on_a.values()) == {v1, "status 500"}  # both variants in use: the canary answers errors
            canary_answers["a"] += sum(v == "status 500" for v in on_a.values())
            canary_answers["b"] += sum(v == "status 500" for v in on_b.values())

            time.sleep(BAKE_S + 0.05)
            t = tick(r, source)
            assert t.action == "rolled_back", t.note
            assert {k.name for k in t.analysis.breached} >= {"error_rate", "schema_failure_rate"}
            # The monitor judged both servers' traffic together: every canary answer either server gave.
            assert t.analysis.canary_requests == canary_answers["a"] + canary_answers["b"]
            assert t.analysis.canary_requests > max(canary_answers.values())
            _mirrors_agree(r, registry)
            assert current_flags(r.flags_dir, "helpdesk")["flags"]["helpdesk.route"]["variants"] == {"champion": v1}

            wait_for(lambda: served(url_a) == served(url_b) == {v1})  # both stop routing to the canary
        state = replay(store.events("helpdesk"))
        assert (state.champion, state.canary) == (v1, None)
