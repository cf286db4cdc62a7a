"""A real Prometheus (Debian's package) scrapes a test server on 127.0.0.1: reading through PromQL gives the same
snapshot as reading /metrics directly, and deploy/prometheus/rules.yml evaluates without errors on real series.

Prometheus runs as our own process on a free port with its data in tmp, never a system service on 9090. Its first
scrape comes about 5 s after start (the scrape manager applies new targets on a 5 s tick), so the test takes ~6 s.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from release_assets.rollout.counters import Snapshot
from release_assets.rollout.metrics_source import MetricsEndpointSource, PrometheusSource
from release_assets_tests.deploy.fake_serve import fake_app, free_port, send_traffic, serving

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "rules.yml"
PROMETHEUS = Path("/usr/bin/prometheus")
pytestmark = pytest.mark.skipif(
    not PROMETHEUS.exists(), reason="/usr/bin/prometheus missing: install Debian's prometheus package (.ci/run does)"
)
DEADLINE_S = 30  # for the whole test: start, first scrape, rule evaluations


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())


@contextmanager
def prometheus(tmp: Path, target: str, until: float) -> Iterator[str]:
    """Prometheus scraping ``target`` (host:port) every second with rules.yml, on a free 127.0.0.1 port; its base
    URL once ready. Always terminated on exit."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "serve", "static_configs": [{"targets": [target]}]}],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port, log = free_port(), tmp / "prometheus.log"
    args = [
        str(PROMETHEUS),
        f"--config.file={tmp / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        while time.monotonic() < until:
            if proc.poll() is not None:
                pytest.fail(f"prometheus exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail(f"prometheus not ready in time:\n{log.read_text()[-3000:]}")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_promql_reads_what_metrics_says(tmp_path):
    started = time.monotonic()
    until = started + DEADLINE_S
    with (
        fake_app() as (app, metrics, pool),
        serving(app) as server,
        prometheus(tmp_path, server.removeprefix("http://"), until) as base,
    ):
        ready_s = time.monotonic() - started
        with httpx.Client(base_url=server, timeout=10) as client:
            send_traffic(client, pool, metrics)
        direct, promql = MetricsEndpointSource([f"{server}/metrics"]), PrometheusSource(base)
        expected, got = direct.snapshot("helpdesk"), None
        # Nothing changes after the traffic, so the two agree once Prometheus has scraped it.
        while time.monotonic() < until:
            got = promql.snapshot("helpdesk")
            if got == expected:
                break
            time.sleep(0.2)
        equal_s = time.monotonic() - started
        assert got == expected, f"PromQL never matched /metrics:\n{got}\n!=\n{expected}"
        assert direct.snapshot("helpdesk") == expected  # and /metrics did not move meanwhile
        champion, canary = expected.versions["v1"], expected.versions["v2"]
        assert champion.requests > 0 and canary.requests > 0 and canary.errors > 0 and canary.circuit_open
        # The monitor's decision is a function of the snapshot: through PromQL it decides what /metrics decides.
        from release_assets.manifest.rollout import RolloutSpec
        from release_assets.rollout.analysis import analyse

        spec = RolloutSpec(steps=[25, 100], bake_s=0, min_requests=1, budgets={"error_rate": {"max_increase": 0.02}})
        decisions = [analyse(s.counters("v2"), s.counters("v1"), spec, 0, 1.0) for s in (got, expected)]
        assert decisions[0] == decisions[1] and decisions[0].decision == "breach"
        assert promql.snapshot("iris") == direct.snapshot("iris") != Snapshot({})
        assert promql.snapshot("no_such_release") == Snapshot({})

        # Every rule evaluates on these real series without error (no many-to-many matching, for one).
        groups = []
        while time.monotonic() < until:
            groups = get_json(f"{base}/api/v1/rules")["data"]["groups"]
            if all(rule["health"] != "unknown" for group in groups for rule in group["rules"]):
                break
            time.sleep(0.2)
        health = {rule["name"]: (rule["health"], rule.get("lastError") or "") for g in groups for rule in g["rules"]}
        defined = yaml.safe_load(RULES.read_text())["groups"]
        assert len(health) == sum(len(g["rules"]) for g in defined), health
        assert set(health.values()) == {("ok", "")}, health
        weight = []  # recorded at the first evaluation after the scrape
        while not weight and time.monotonic() < until:
            weight = promql.query('release:release_assets_serving_canary_weight:max{release="helpdesk"}')
            time.sleep(0 if weight else 0.2)
        assert [(w["metric"]["canary_version"], w["value"][1]) for w in weight] == [("v2", "25")]
        print(f"prometheus ready {ready_s:.1f}s, snapshots equal {equal_s:.1f}s")
