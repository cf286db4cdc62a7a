"""deploy/k8s/serve/ cannot run here (no cluster): it is validated as data.

Core kinds (Deployment, Service, Secret) against the Kubernetes API schemas kubernetes-validate ships (offline, no
cluster, strict: an unknown field is an error); ServiceMonitor and PrometheusRule against the CRD schemas kept in
deploy/k8s/serve/schemas/; and all of them against what the code reads: the command is one ``release-assets serve``
parses, the probes and the scrape hit routes the app has, the ports and selectors meet, every environment
variable is one the code reads, the PrometheusRule is deploy/prometheus/rules.yml as generate.py renders it.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from bench.support.fakes import FakeRelease
from release_assets.core.settings import Settings
from release_assets.serving.app import create_app

REPO = Path(__file__).resolve().parents[2]
SERVE = REPO / "deploy" / "k8s" / "serve"
K8S_VERSION = "1.31.0"  # the newest API kubernetes-validate 1.31 ships schemas for
FILES = ("deployment.yaml", "service.yaml", "servicemonitor.yaml", "prometheusrule.yaml", "secret.example.yaml")
CRDS = {"ServiceMonitor": "servicemonitor", "PrometheusRule": "prometheusrule"}
LIBRARY_ENV = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}  # boto3's, for the S3 store (as in test_k8s_values)


def _documents() -> dict[str, dict]:
    docs = {}
    for name in FILES:
        for doc in yaml.safe_load_all((SERVE / name).read_text()):
            if doc:
                docs[doc["kind"]] = doc
    return docs


def _validate(doc: dict) -> None:
    """Raise for a document its schema refuses: the Kubernetes API's, or the CRD's kept in the repository."""
    if doc["kind"] in CRDS:
        schema = json.loads((SERVE / "schemas" / f"{CRDS[doc['kind']]}.schema.json").read_text())
        jsonschema.validate(doc, schema, cls=jsonschema.Draft7Validator)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_every_manifest_validates_against_its_schema():
    docs = _documents()
    assert set(docs) == {"Deployment", "Service", "ServiceMonitor", "PrometheusRule", "Secret"}
    for doc in docs.values():
        _validate(doc)


def _set(doc: dict, path: str, value) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return doc


@pytest.mark.parametrize(
    "kind, path, value",
    [
        ("Deployment", "spec.selector", None),  # required
        ("Deployment", "spec.template.spec.containers.0.readinessProbe.httpGet.paht", "/readyz"),  # unknown field
        ("Deployment", "spec.replicas", "two"),  # wrong type
        ("Service", "spec.ports.0.port", "http"),
        ("ServiceMonitor", "spec.endpoints", None),
        ("ServiceMonitor", "spec.endpoints.0.interval", "5 seconds"),
        ("PrometheusRule", "spec.groups.0.rules.0.expr", None),
        ("PrometheusRule", "spec.groups.0.name", ""),
    ],
)
def test_the_validators_refuse_a_broken_manifest(kind, path, value):
    broken = _set(_documents()[kind], path, value)
    with pytest.raises((kubernetes_validate.ValidationError, jsonschema.ValidationError)):
        _validate(broken)


def _container() -> dict:
    (container,) = _documents()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def _serve_args(monkeypatch, argv: list[str]):
    """What ``release-assets serve`` makes of ``argv``: its parsed options (nothing is served)."""
    import release_assets.cli.main as cli

    parsed = []
    monkeypatch.setattr(cli, "cmd_serve", lambda args: parsed.append(args) or 0)
    assert cli.main(argv) == 0
    return parsed[0]


def test_the_command_is_a_serve_the_cli_parses_and_its_cpu_is_a_core_per_worker(monkeypatch):
    container = _container()
    program, *argv = container["command"]
    assert program == "release-assets"  # the console script pyproject.toml declares
    assert 'release-assets = "release_assets.cli.main:main"' in (REPO / "pyproject.toml").read_text()
    args = _serve_args(monkeypatch, argv)
    assert args.command == "serve" and args.host == "0.0.0.0" and args.release == []
    assert args.workers >= 2 and args.max_in_flight >= 1
    assert container["resources"]["requests"]["cpu"] == str(args.workers)
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": args.port}


def test_probes_and_the_scrape_hit_routes_the_app_has_on_ports_that_meet():
    docs, container = _documents(), _container()
    paths = {route.path for route in create_app({"helpdesk": FakeRelease()}).routes}
    readiness, liveness = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
    assert (readiness["path"], liveness["path"]) == ("/readyz", "/healthz") and {"/readyz", "/healthz"} <= paths
    assert readiness["port"] == liveness["port"] == "http"
    service, monitor = docs["Service"], docs["ServiceMonitor"]
    [port] = service["spec"]["ports"]
    assert port["targetPort"] == "http"
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == port["name"] and endpoint["path"] == "/metrics" and "/metrics" in paths
    # Selectors meet: the Service picks the Deployment's pods, the ServiceMonitor picks the Service.
    pod_labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert docs["Deployment"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    # The same pace as the local Prometheus (deploy/prometheus/prometheus.yml).
    local = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())["global"]
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == (local["scrape_interval"], local["scrape_timeout"])


def test_every_env_var_is_read_and_every_secret_key_is_documented():
    fields = {f"RELEASE_ASSETS_{name.upper()}" for name in Settings.model_fields}
    env = _container()["env"]
    unread = [e["name"] for e in env if e["name"] not in fields | LIBRARY_ENV]
    assert not unread, f"deploy/k8s/serve/deployment.yaml sets variables nothing reads: {unread}"
    values = {e["name"]: e["value"] for e in env if "value" in e}
    settings = Settings(**{k.removeprefix("RELEASE_ASSETS_").lower(): v for k, v in values.items()})
    assert settings.store_backend == "s3"
    secrets = {d["metadata"]["name"]: set(d["stringData"]) for d in _all_secrets()}
    for e in env:
        if "valueFrom" in e:
            ref = e["valueFrom"]["secretKeyRef"]
            assert ref["key"] in secrets.get(ref["name"], set()), f"{ref} is in no example secret"
    mounts = {m["mountPath"] for m in _container()["volumeMounts"]}
    assert values["RELEASE_ASSETS_STORE_ROOT"] in mounts  # writable although the root filesystem is read-only


def _all_secrets() -> list[dict]:
    docs = list(yaml.safe_load_all((SERVE / "secret.example.yaml").read_text()))
    docs += yaml.safe_load_all((REPO / "deploy" / "k8s" / "secrets.example.yaml").read_text())
    return [d for d in docs if d and d["kind"] == "Secret"]


def test_the_prometheus_rule_is_the_rules_file_as_generated():
    spec = importlib.util.spec_from_file_location("deploy_k8s_serve_generate", SERVE / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    committed = (SERVE / "prometheusrule.yaml").read_text()
    assert committed == generate.render(), "prometheusrule.yaml is stale: run python deploy/k8s/serve/generate.py"
    rules = yaml.safe_load((REPO / "deploy" / "prometheus" / "rules.yml").read_text())
    assert _documents()["PrometheusRule"]["spec"]["groups"] == rules["groups"]
