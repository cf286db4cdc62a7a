"""The canary monitor's metrics reading: snapshots from /metrics, windows between snapshots, latency quantiles."""

from __future__ import annotations

import math
import re

import pytest
from starlette.testclient import TestClient

from release_assets.rollout import metrics_source as ms
from release_assets.rollout.counters import Snapshot, VersionCounters, p99_ms, quantile_ms, window
from release_assets.rollout.metrics_source import (
    MetricsEndpointSource,
    MetricsUnavailable,
    PrometheusSource,
    source_from_env,
)
from release_assets_tests.deploy.fake_serve import fake_app, free_port, send_traffic

INF = math.inf


def counters(requests=0.0, errors=0.0, intents=None, buckets=None, **kw) -> VersionCounters:
    base = {"schema_failures": 0.0, "escalations": 0.0, "abstentions": 0.0, "circuit_open": False}
    return VersionCounters(requests, errors, intents=intents or {}, latency_buckets=buckets or {}, **(base | kw))


def test_snapshot_of_a_scrape_sums_variants_and_leaves_out_refused_requests(monkeypatch):
    with fake_app() as (app, metrics, pool):
        client = TestClient(app)
        send_traffic(client, pool, metrics)
        text = client.get("/metrics").content
    monkeypatch.setattr(ms, "_fetch", lambda url, timeout, named=None: text)
    snap = MetricsEndpointSource(["http://a/metrics", "http://b/metrics"]).snapshot("helpdesk")
    assert snap.sources == ["http://a/metrics", "http://b/metrics"]
    assert sorted(snap.versions) == ["v1", "v2"]  # v3 only shadows: no answers of its own
    v1, v2 = snap.versions["v1"], snap.versions["v2"]
    # Two servers scraped, the same text: everything doubles. v1: 6 answers (1 exploded); the 415 is not counted.
    assert (v1.requests, v1.errors, v1.schema_failures, v1.escalations, v1.abstentions) == (12, 2, 2, 2, 0)
    assert v1.intents == {"refund": 4, "order_status": 2, "other": 2, "cancel_order": 2}
    assert (v2.requests, v2.errors, v2.circuit_open, v1.circuit_open) == (8, 2, True, False)
    assert v1.latency_buckets[INF] == 12 and len(v1.latency_buckets) == 12
    assert 0 < p99_ms(v1) <= 1000
    assert MetricsEndpointSource(["http://a/metrics"]).snapshot("nothing") == Snapshot({})


def test_unreachable_or_malformed_sources_raise_naming_the_url(monkeypatch):
    url = f"http://127.0.0.1:{free_port()}/metrics"
    with pytest.raises(MetricsUnavailable, match=re.escape(url) + ": .*refused"):
        MetricsEndpointSource([url], timeout=2).snapshot("helpdesk")
    base = url.removesuffix("/metrics")
    with pytest.raises(MetricsUnavailable) as unreachable:
        PrometheusSource(base, timeout=2).snapshot("helpdesk")
    reason = str(unreachable.value)  # the server and the metric, not kilobytes of URL-encoded PromQL
    assert reason.startswith(f"Prometheus {base} (release_assets_serving_* counters of release helpdesk): ")
    assert "refused" in reason and "query=" not in reason and len(reason) < 200, reason
    monkeypatch.setattr(ms, "_fetch", lambda url, timeout, named=None: b"release_assets_serving_requests_total{ 1 2 3")
    with pytest.raises(MetricsUnavailable, match="http://x/metrics: not Prometheus text format"):
        MetricsEndpointSource(["http://x/metrics"]).snapshot("helpdesk")
    monkeypatch.setattr(ms, "_fetch", lambda url, timeout, named=None: b'{"status": "error", "error": "parse error"}')
    with pytest.raises(MetricsUnavailable, match="query failed: parse error"):
        PrometheusSource("http://p:9090").snapshot("helpdesk")


def test_prometheus_empty_result_is_zero_counts(monkeypatch):
    answer = b'{"status": "success", "data": {"resultType": "vector", "result": []}}'
    monkeypatch.setattr(ms, "_fetch", lambda url, timeout, named=None: answer)
    snap = PrometheusSource("http://p:9090/").snapshot("helpdesk")
    assert snap == Snapshot({}) and snap.counters("v1") == counters()
    assert p99_ms(snap.counters("v1")) is None


def test_source_from_env(monkeypatch):
    """Read afresh at each call (each tick), so a changed variable counts without a restart."""
    monkeypatch.delenv("RELEASE_ASSETS_PROMETHEUS_URL", raising=False)
    monkeypatch.setenv("RELEASE_ASSETS_METRICS_URLS", "")  # empty: the default
    assert repr(source_from_env()) == "MetricsEndpointSource(['http://127.0.0.1:8000/metrics'])"
    monkeypatch.setenv("RELEASE_ASSETS_METRICS_URLS", " http://a:1/metrics, ,http://b:2/metrics ")
    assert source_from_env().urls == ["http://a:1/metrics", "http://b:2/metrics"]
    monkeypatch.setenv("RELEASE_ASSETS_PROMETHEUS_URL", "http://prom:9090/")
    assert repr(source_from_env()) == "PrometheusSource('http://prom:9090')"
    monkeypatch.delenv("RELEASE_ASSETS_PROMETHEUS_URL")
    for wrong in (" , ", "127.0.0.1:8000/metrics"):
        monkeypatch.setenv("RELEASE_ASSETS_METRICS_URLS", wrong)
        with pytest.raises(ValueError, match="RELEASE_ASSETS_METRICS_URLS"):
            source_from_env()


def test_window_subtracts_per_version():
    before = Snapshot(
        {
            "a": counters(10, 1, {"refund": 6, "other": 4}, {0.01: 8, 0.1: 10, INF: 10}, escalations=2),
            "gone": counters(5),
        },
        ["t0"],
    )
    after = Snapshot(
        {
            "a": counters(25, 4, {"refund": 10, "other": 4, "cancel": 11}, {0.01: 15, 0.1: 24, INF: 25}, escalations=3),
            "new": counters(3, circuit_open=True),
        },
        ["t1"],
    )
    got = window(before, after)
    assert got.versions["a"] == counters(
        15, 3, {"refund": 4, "other": 0, "cancel": 11}, {0.01: 7, 0.1: 14, INF: 15}, escalations=1
    )
    assert got.versions["new"] == counters(3, circuit_open=True)  # first seen: counted from its start
    assert "gone" not in got.versions and got.sources == ["t0", "t1"]
    assert window(None, after) == after


def test_window_after_a_restart_is_after_alone():
    before = Snapshot({"a": counters(100, 5, {"refund": 100}, {0.01: 90, INF: 100})})
    restarted = Snapshot({"a": counters(7, 0, {"refund": 7}, {0.01: 7, INF: 7})})
    got = window(before, restarted).versions["a"]
    assert got.reset and got == counters(7, 0, {"refund": 7}, {0.01: 7, INF: 7}, reset=True)
    # Any counter going down is a restart, even when the request count grew meanwhile (or a label vanished).
    grew = Snapshot({"a": counters(130, 1, {"refund": 130}, {0.01: 120, INF: 130})})
    assert window(before, grew).versions["a"].reset
    vanished = Snapshot({"a": counters(130, 6, {"other": 130}, {0.01: 120, INF: 130})})
    assert window(before, vanished).versions["a"] == counters(130, 6, {"other": 130}, {0.01: 120, INF: 130}, reset=True)
    assert not window(before, before).versions["a"].reset


def test_window_is_taken_server_by_server_and_a_restart_is_told_by_its_start_time():
    def snap(started: dict, parts: dict) -> Snapshot:
        summed = {}
        for part in parts.values():
            for v, c in part.items():
                summed[v] = counters(summed[v].requests + c.requests) if v in summed else c
        return Snapshot(summed, started=started, by_server=parts)

    before = snap({"s1": 1.0, "s2": 1.0}, {"s1": {"a": counters(100)}, "s2": {"a": counters(40)}})
    # s2 restarted and has already served more than it had before: only its start time tells.
    after = snap({"s1": 1.0, "s2": 9.0}, {"s1": {"a": counters(130)}, "s2": {"a": counters(55)}})
    got = window(before, after).versions["a"]
    assert got.requests == 30 + 55 and got.reset
    quiet = window(before, snap({"s1": 1.0, "s2": 1.0}, {"s1": {"a": counters(130)}, "s2": {"a": counters(55)}}))
    assert quiet.versions["a"].requests == 30 + 15 and not quiet.versions["a"].reset


def test_snapshots_carry_each_servers_start_time(monkeypatch):
    with fake_app() as (app, _, _):
        text = TestClient(app).get("/metrics").content
    monkeypatch.setattr(ms, "_fetch", lambda url, timeout, named=None: text)
    snap = MetricsEndpointSource(["http://127.0.0.1:8000/metrics"]).snapshot("helpdesk")
    assert list(snap.started) == ["127.0.0.1:8000"] and snap.started["127.0.0.1:8000"] > 1.7e9


def test_quantile_ms_interpolates_like_histogram_quantile():
    buckets = {0.005: 50, 0.01: 90, 0.025: 99, 0.05: 100, INF: 100}
    assert quantile_ms(buckets, 0.5) == pytest.approx(5.0)  # rank 50: the top of the first bucket
    assert quantile_ms(buckets, 0.25) == pytest.approx(2.5)  # first bucket starts at 0: 25/50 of 5 ms
    assert quantile_ms(buckets, 0.7) == pytest.approx(7.5)  # rank 70: 5 + 5 * (70 - 50) / 40
    assert quantile_ms(buckets, 0.99) == pytest.approx(25.0)  # rank 99: top of the 10..25 ms bucket
    assert quantile_ms(buckets, 0.995) == pytest.approx(37.5)  # 25 + 25 * 0.5 / 1
    # A rank in +Inf answers the highest finite bound, as PromQL does.
    assert quantile_ms({0.001: 1, 0.1: 2, INF: 10}, 0.99) == pytest.approx(100.0)
    # Unordered input, and a non-monotonic bucket is raised to the one below (Prometheus' ensureMonotonic).
    assert quantile_ms({INF: 4, 0.002: 1, 0.001: 2}, 0.5) == pytest.approx(1.0)
    assert quantile_ms({0.01: 0, INF: 0}, 0.99) is None and quantile_ms({}, 0.5) is None
    assert p99_ms(counters()) is None
    assert p99_ms(counters(buckets={0.01: 100, INF: 100})) == pytest.approx(9.9)
    with pytest.raises(ValueError, match="no \\+Inf bucket"):
        quantile_ms({0.01: 1}, 0.5)
    with pytest.raises(ValueError, match="quantile"):
        quantile_ms(buckets, 1.5)
