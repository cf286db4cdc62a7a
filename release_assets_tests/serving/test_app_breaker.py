"""The serving app with circuit breakers: a failing canary is routed around, the champion never is; and the
metrics the canary monitor reads (circuit_open, intents_total, canary_weight) in ``/metrics``."""

from __future__ import annotations

import logging
import time

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from bench.support.fakes import EXPLODE, FakeRelease, FakeRouter, list_as_published
from release_assets.serving.app import create_app
from release_assets.serving.breaker import BreakerPolicy, Breakers
from release_assets.serving.flags import FlagRouter, flag_document, flags_path, write_flags
from release_assets.serving.metrics import PREFIX, ServingMetrics

URL = "/v1/helpdesk/predict"
CANARY = {"release": "helpdesk", "version": "v2", "variant": "canary"}
CHAMPION = {"release": "helpdesk", "version": "v1", "variant": "champion"}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class BrokenCanary(FakeRelease):
    """Fails every request while ``broken``: a step raises (a 500), or, with ``schema``, answers 200 carrying a
    step's schema failure."""

    def __init__(self, schema: bool = False) -> None:
        super().__init__("helpdesk", "v2")
        self.broken, self.schema = True, schema

    def predict(self, request, **kwargs):
        message = request.get("message") if isinstance(request, dict) else None
        if self.broken and not self.schema and isinstance(message, str) and message:  # bad input stays a 4xx
            request = {**request, "message": f"{message} {EXPLODE}"}
        out = super().predict(request, **kwargs)
        return {**out, "errors": {"reply": "not a str"}} if self.broken and self.schema else out


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return None


POLICY = BreakerPolicy(0.5, 10, 4, 30.0)


def app_with(canary, policy=POLICY, champion=None, clock=None, metrics=None):
    releases = {"helpdesk": champion or FakeRelease(), "iris": FakeRelease("iris", kind="classifier")}
    breakers = Breakers({"helpdesk": policy}, clock or Clock())
    app = create_app(
        releases,
        router=FakeRouter("canary", "v2"),
        loader=lambda release, version: canary,
        breakers=breakers,
        metrics=metrics,
    )
    app.state.versions.preload("helpdesk", "v2")  # as serve's version keeper does before any user reaches it
    return TestClient(app)


def variants(c: TestClient, n: int, message: str = "refund") -> list[tuple[int, str, str]]:
    out = []
    for i in range(n):
        r = c.post(URL, json={"message": message, "user_id": f"u{i}"})
        body = r.json()
        out.append((r.status_code, body.get("variant", "-"), body.get("version", "-")))
    return out


def test_a_failing_canary_trips_its_breaker_and_the_champion_answers_its_keys():
    c = app_with(BrokenCanary())
    assert variants(c, 4) == [(500, "-", "-")] * 4  # 4 of 4 failed: min_requests reached, share 1.0
    assert variants(c, 3) == [(200, "champion", "v1")] * 3  # canary-routed keys, answered by the champion
    text = c.get("/metrics").text
    assert sample(text, f"{PREFIX}_circuit_open", **CANARY) == 1
    assert sample(text, f"{PREFIX}_circuit_open", **CHAMPION) == 0
    assert sample(text, f"{PREFIX}_requests_total", **CANARY, status_class="5xx") == 4
    assert sample(text, f"{PREFIX}_requests_total", **CHAMPION, status_class="2xx") == 3


def test_schema_failures_count_as_failures_and_a_successful_probe_closes_it():
    canary, clock = BrokenCanary(schema=True), Clock()
    c = app_with(canary, clock=clock)
    assert [v for v, *_ in variants(c, 4)] == [200] * 4  # answered, but every answer broke its schema
    assert {variant for _, variant, _ in variants(c, 2)} == {"champion"}
    assert sample(c.get("/metrics").text, f"{PREFIX}_circuit_open", **CANARY) == 1
    clock.now += 31  # cooldown over: half-open, one probe goes to the canary, now fixed
    canary.broken = False
    assert variants(c, 1) == [(200, "canary", "v2")]
    assert variants(c, 3) == [(200, "canary", "v2")] * 3
    assert sample(c.get("/metrics").text, f"{PREFIX}_circuit_open", **CANARY) == 0


def test_a_failed_probe_reopens_and_the_canary_stays_routed_around():
    clock = Clock()
    c = app_with(BrokenCanary(), clock=clock)
    variants(c, 4)
    clock.now += 31
    assert variants(c, 1) == [(500, "-", "-")]  # the probe, still failing
    assert {variant for _, variant, _ in variants(c, 3)} == {"champion"}
    assert sample(c.get("/metrics").text, f"{PREFIX}_circuit_open", **CANARY) == 1


def test_below_min_requests_the_canary_keeps_serving():
    c = app_with(BrokenCanary(), policy=BreakerPolicy(0.5, 10, 6))
    assert variants(c, 5) == [(500, "-", "-")] * 5
    assert sample(c.get("/metrics").text, f"{PREFIX}_circuit_open", **CANARY) == 0


def test_client_errors_are_no_outcome():
    c = app_with(BrokenCanary())
    for _ in range(6):
        assert c.post(URL, json={"message": ""}).status_code == 422
    assert sample(c.get("/metrics").text, f"{PREFIX}_circuit_open", **CANARY) is None  # no outcome recorded yet


def test_an_open_champion_breaker_keeps_serving_the_champion_and_warns(caplog):
    releases = {"helpdesk": FakeRelease()}
    clock = Clock()
    app = create_app(releases, breakers=Breakers({"helpdesk": BreakerPolicy(0.5, 10, 4)}, clock))
    c = TestClient(app)
    with caplog.at_level(logging.WARNING, logger="release_assets.serving.breaker"):
        assert [s for s, *_ in variants(c, 4, EXPLODE)] == [500] * 4
        assert variants(c, 2) == [(200, "champion", "v1")] * 2  # nothing safer to route to
    assert sample(c.get("/metrics").text, f"{PREFIX}_circuit_open", **CHAMPION) == 1
    assert any("OPEN for helpdesk v1" in m and "still serving it" in m for m in caplog.messages)


def test_without_a_policy_there_is_no_breaker():
    app = create_app(
        {"helpdesk": FakeRelease()},
        router=FakeRouter("canary", "v2"),
        loader=lambda release, version: BrokenCanary(),
        breakers=Breakers({"iris": BreakerPolicy(0.5, 10, 4)}),
    )
    app.state.versions.preload("helpdesk", "v2")
    c = TestClient(app)
    assert variants(c, 6) == [(500, "-", "-")] * 6
    assert f"{PREFIX}_circuit_open{{" not in c.get("/metrics").text


def test_intents_are_counted_by_intent_or_label_with_bounded_values():
    odd = FakeRelease("helpdesk", "v2")
    answers = iter(["refund", "x" * 65, "has space", "", None, "billing.v2:late-fee"])
    odd.predict = lambda request, **kw: {"intent": next(answers), "confidence": 0.9}
    c = TestClient(create_app({"helpdesk": odd, "iris": FakeRelease("iris", kind="classifier")}))
    for _ in range(6):
        assert c.post(URL, json={"message": "refund"}).status_code == 200
    assert c.post("/v1/iris/predict", json={"features": [5.1, 3.5, 1.4, 0.2]}).status_code == 200
    text = c.get("/metrics").text
    head = {"release": "helpdesk", "version": "v2", "variant": "champion"}
    counted = {
        s.labels["intent"]: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == f"{PREFIX}_intents_total" and s.labels["release"] == "helpdesk"
    }
    assert counted == {"refund": 1, "other": 2, "billing.v2:late-fee": 1}  # "" and None are not intents
    assert sample(text, f"{PREFIX}_intents_total", **head, intent="refund") == 1
    iris = {"release": "iris", "version": "v1", "variant": "champion", "intent": "setosa"}
    assert sample(text, f"{PREFIX}_intents_total", **iris) == 1


def test_canary_weight_is_the_applied_flags_at_every_scrape(tmp_path):
    champion, canary = "a" * 16, "b" * 16
    path = flags_path(tmp_path, "helpdesk")
    write_flags(path, flag_document("helpdesk", champion, canary, 5))
    router = FlagRouter(tmp_path, poll_interval_s=0.001)

    def weights():
        return {release: router.canary_weight(release) for release in ("helpdesk", "iris")}

    def scrape():
        time.sleep(0.005)  # past the router's poll interval: each scrape looks at the file again
        return c.get("/metrics").text

    c = app_with(FakeRelease("helpdesk", "v2"), metrics=ServingMetrics(weights=weights))
    weight = f"{PREFIX}_canary_weight"
    try:
        text = scrape()
        assert sample(text, weight, release="helpdesk", canary_version=canary) == 5
        assert sample(text, weight, release="iris", canary_version="none") == 0  # no flag file: no canary
        write_flags(path, flag_document("helpdesk", champion, canary, 25))
        assert sample(scrape(), weight, release="helpdesk", canary_version=canary) == 25
        path.write_text("{not json")  # refused: the gauge keeps showing what still routes
        assert sample(scrape(), weight, release="helpdesk", canary_version=canary) == 25
        write_flags(path, flag_document("helpdesk", champion))  # canary removed
        assert sample(scrape(), weight, release="helpdesk", canary_version="none") == 0
    finally:
        router.close()


def test_a_broken_weights_callback_does_not_break_metrics():
    def weights():
        raise OSError("flags folder gone")

    c = app_with(FakeRelease("helpdesk", "v2"), metrics=ServingMetrics(weights=weights))
    r = c.get("/metrics")
    assert r.status_code == 200 and f"# TYPE {PREFIX}_canary_weight gauge" in r.text


def test_build_server_wires_the_policies_and_the_flag_file_weights(tmp_path, monkeypatch):
    """``build_server`` over fake loads (publishing is what test_server.py pays for): its breakers and weights."""
    import release_assets.serving.loader as loader
    from release_assets.serving.server import build_server

    champion, canary = "a" * 16, "c" * 16
    fakes = {champion: FakeRelease("helpdesk", champion), canary: BrokenCanary()}
    fakes[canary].version = canary
    monkeypatch.setattr(loader, "load_release", lambda store, release, version=None, **kw: fakes[version or champion])
    write_flags(flags_path(tmp_path / "flags", "helpdesk"), flag_document("helpdesk", champion, canary, 100))
    server = build_server(
        list_as_published(tmp_path / "store", "helpdesk", champion, canary),  # flags name only published versions
        ["helpdesk"],
        cache_dir=tmp_path / "cache",
        flags_dir=tmp_path / "flags",
        trace_path=None,
        breaker_policies={"helpdesk": BreakerPolicy(0.5, 10, 4)},
    )
    try:
        c = TestClient(server.app)
        assert [s for s, *_ in variants(c, 4)] == [500] * 4  # all keys go to the canary (100%), which fails
        assert variants(c, 2) == [(200, "champion", champion)] * 2
        text = c.get("/metrics").text
    finally:
        server.close()
    assert sample(text, f"{PREFIX}_circuit_open", release="helpdesk", version=canary, variant="canary") == 1
    assert sample(text, f"{PREFIX}_canary_weight", release="helpdesk", canary_version=canary) == 100
