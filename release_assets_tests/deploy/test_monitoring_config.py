"""deploy/: Prometheus config and rules pass promtool, dashboards are the generator's output, and every metric a
rule or a panel queries is one ``serve`` exports (compared with a scrape of a real app over fake releases)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from release_assets_tests.deploy.fake_serve import fake_app, send_traffic

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "prometheus"
GRAFANA = REPO / "deploy" / "grafana"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
needs_promtool = pytest.mark.skipif(
    not Path(PROMTOOL).exists(), reason="promtool missing: install Debian's prometheus package (.ci/run does)"
)
RECORDED = re.compile(r"\b[a-zA-Z_][a-zA-Z0-9_]*(?::[a-zA-Z0-9_]*)+")  # level:metric:operation
SERIES = re.compile(r"\brelease_assets_serving_[a-z_]+")


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=30)


@needs_promtool
@pytest.mark.parametrize(
    "args",
    [("check", "config", "prometheus.yml"), ("check", "rules", "rules.yml"), ("test", "rules", "rules_test.yml")],
    ids=" ".join,
)
def test_promtool(args):
    done = promtool(*args)
    assert done.returncode == 0, done.stdout + done.stderr


def rules() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_exprs() -> dict[str, list[str]]:
    return {
        path.name: [t["expr"] for panel in json.loads(path.read_text())["panels"] for t in panel["targets"]]
        for path in sorted((GRAFANA / "dashboards").glob("*.json"))
    }


def exported_series() -> set[str]:
    """Every series name the app's /metrics can hold, from each family's name and type (a labelled family with no
    samples yet is still listed, with its HELP and TYPE)."""
    with fake_app() as (app, metrics, pool):
        client = TestClient(app)
        send_traffic(client, pool, metrics)
        text = client.get("/metrics").text
    suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}
    suffixes["summary"] = ["", "_sum", "_count"]
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + suffix for suffix in suffixes.get(family.type, [""])}
        names |= {sample.name for sample in family.samples}
    return names


def referenced(expr: str) -> tuple[set[str], set[str]]:
    """(recording-rule names, raw series names) an expression reads."""
    recorded = set(RECORDED.findall(expr))
    return recorded, set(SERIES.findall(RECORDED.sub(" ", expr)))


def test_every_queried_metric_is_exported_or_recorded():
    exported = exported_series()
    defined = {rule["record"] for rule in rules() if "record" in rule}
    where = {f"rules.yml {rule.get('record') or rule.get('alert')}": [rule["expr"]] for rule in rules()}
    where |= {f"dashboards/{name}": exprs for name, exprs in dashboard_exprs().items()}
    problems, used = [], set()
    for place, exprs in where.items():
        for expr in exprs:
            recorded, series = referenced(expr)
            used |= series
            problems += [f"{place}: {name} is not a recording rule in rules.yml" for name in recorded - defined]
            problems += [f"{place}: serve does not export {name}" for name in series - exported]
    assert not problems, "\n".join(problems)
    # The budgets' inputs are all read somewhere: a renamed metric cannot silently drop out of every panel.
    for family in ("requests_total", "schema_failures_total", "request_duration_seconds_bucket", "intents_total"):
        assert f"release_assets_serving_{family}" in used
    for family in ("circuit_open", "canary_weight", "shadow_comparisons_total", "shadow_agreement_ratio"):
        assert f"release_assets_serving_{family}" in used
    for family in ("flag_file_rejected", "flag_errors_total"):  # the FlagFileRejected alert's inputs
        assert f"release_assets_serving_{family}" in used
    assert "release_assets_serving_feedback_total" in used  # the business KPIs' input


def test_the_name_check_catches_a_typo():
    recorded, series = referenced("sum(rate(release_assets_serving_request_total[5m])) / x:release_assets_serving_y:z")
    assert (recorded, series) == ({"x:release_assets_serving_y:z"}, {"release_assets_serving_request_total"})
    assert "release_assets_serving_request_total" not in exported_series()


def load_generator():
    spec = importlib.util.spec_from_file_location("deploy_grafana_generate", GRAFANA / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_dashboards_are_the_generators_output():
    generate = load_generator()
    kinds = generate.release_kinds(REPO)
    assert (kinds["helpdesk"], kinds["iris"], kinds["kbqa"]) == ("chain", "classifier", "chain")
    committed = sorted(p.stem for p in (GRAFANA / "dashboards").glob("*.json"))
    assert committed == sorted(kinds), "one dashboard per release: run python deploy/grafana/generate.py"
    for release, kind in kinds.items():
        text = (GRAFANA / "dashboards" / f"{release}.json").read_text()
        assert text == generate.render(release, kind), f"{release}.json is stale: run python deploy/grafana/generate.py"


def test_dashboards_have_the_panels_the_issue_asks_for():
    generate = load_generator()
    chain = [p["title"] for p in generate.dashboard("helpdesk", "chain")["panels"]]
    for title in ("Traffic split by variant", "Error rate by variant", "Latency p50 and p99 by variant",
                  "Schema failures", "Escalation and abstain rates", "Intents by variant", "Shadow agreement",
                  "Rollout step (canary weight)", "Circuit breaker", "Business KPIs from feedback",
                  "Feedback received"):  # fmt: skip
        assert title in chain
    classifier = [p["title"] for p in generate.dashboard("iris", "classifier")["panels"]]
    assert "Labels by variant" in classifier and "Escalation and abstain rates" not in classifier
    assert "Business KPIs from feedback" in classifier  # any release can take feedback
    for board in (generate.dashboard("helpdesk"), generate.dashboard("iris", "classifier")):
        ids = [p["id"] for p in board["panels"]]
        assert len(set(ids)) == len(ids)
        assert len({(p["gridPos"]["x"], p["gridPos"]["y"]) for p in board["panels"]}) == len(ids)  # no overlaps
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == "release-assets-prometheus"
            assert all('release="' in t["expr"] for t in panel["targets"]), panel["title"]
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["uid"] == "release-assets-prometheus"
