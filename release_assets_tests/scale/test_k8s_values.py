"""deploy/k8s/ cannot run here (no cluster, no Helm): check that what it names is what the code reads.

Every environment variable the values set must be one the project reads (a ``Settings`` field, an executor
setting) or one a library it uses reads (boto3, MLflow); every secret it names must be in secrets.example.yaml
with keys of that kind; the image must be the one deploy/k8s/Dockerfile builds, serving the same code location.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import yaml

from release_assets.core.settings import Settings
from release_assets.resources import executors

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
# Read by libraries, not by our code: each with the module that reads it (checked below).
LIBRARY_ENV = {
    "AWS_ACCESS_KEY_ID": "boto3",
    "AWS_SECRET_ACCESS_KEY": "boto3",
    "MLFLOW_S3_ENDPOINT_URL": "mlflow",
}
# Keys the chart itself reads from a secret it is told the name of.
CHART_SECRET_KEYS = {"postgresql-password"}


def _values() -> dict:
    return yaml.safe_load((K8S / "values.yaml").read_text())


def _secrets() -> dict[str, set[str]]:
    docs = [d for d in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text()) if d]
    return {d["metadata"]["name"]: set(d["stringData"]) for d in docs if d["kind"] == "Secret"}


def _code_reads(name: str) -> bool:
    fields = {f"RELEASE_ASSETS_{f.upper()}" for f in Settings.model_fields}
    ours = {v for k, v in vars(executors).items() if k.endswith("_ENV") and isinstance(v, str)}
    if name in fields | ours:
        return True
    if name in LIBRARY_ENV:
        module = LIBRARY_ENV[name]
        if module == "mlflow":  # MLflow declares the variables it reads
            return hasattr(importlib.import_module("mlflow.environment_variables"), name)
        # boto3 reads the standard AWS credentials; component/wiring.py (resources_for) binds them with dg.EnvVar too.
        return name in (REPO / "release_assets" / "component" / "wiring.py").read_text()
    return False


def _deployment() -> dict:
    (deployment,) = _values()["dagster-user-deployments"]["deployments"]
    return deployment


def test_every_env_var_the_values_set_is_one_the_code_reads():
    env = {e["name"]: e["value"] for e in _deployment()["env"]}
    unread = [name for name in env if not _code_reads(name)]
    assert not unread, f"deploy/k8s/values.yaml sets variables nothing reads: {unread}"
    assert env["RELEASE_ASSETS_EXECUTOR"] in executors.KINDS
    # The values are valid for the settings they feed.
    settings = Settings(**{k.removeprefix("RELEASE_ASSETS_").lower(): v for k, v in env.items() if "EXECUTOR" not in k})
    assert settings.store_backend == "s3" and settings.tracking_uri.startswith("http")


def test_every_secret_named_is_documented_with_keys_the_code_reads():
    values, secrets = _values(), _secrets()
    named = {s["name"] for s in _deployment()["envSecrets"]}
    named |= {s["name"] for s in values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]}
    named.add(values["global"]["postgresqlSecretName"])
    assert named == set(secrets), (named, set(secrets))
    for name, keys in secrets.items():
        unread = [k for k in keys if k not in CHART_SECRET_KEYS and not _code_reads(k)]
        assert not unread, f"secret {name} has keys nothing reads: {unread}"


def test_the_image_is_the_dockerfiles_and_serves_the_code_location():
    deployment, dockerfile = _deployment(), (K8S / "Dockerfile").read_text()
    assert deployment["image"]["repository"].endswith("/release-assets")
    assert "docker build -f deploy/k8s/Dockerfile -t REGISTRY/release-assets:" in dockerfile
    args = deployment["dagsterApiGrpcArgs"]
    module, attribute = args[args.index("--module-name") + 1], args[args.index("--attribute") + 1]
    assert f'"-m", "{module}", "-a", "{attribute}"' in dockerfile
    assert callable(getattr(importlib.import_module(module), attribute))
    # The extras the image installs exist, and with them the executor the values select.
    extras = re.search(r'pip install --no-cache-dir "\.\[([a-z0-9_,]+)\]"', dockerfile).group(1).split(",")
    pyproject = (REPO / "pyproject.toml").read_text()
    assert all(re.search(rf"^{extra} = \[", pyproject, re.M) for extra in extras), extras
    assert '"dagster-k8s>=0.29.27,<0.30"' in pyproject  # in lockstep with dagster 1.13
    # What the image copies is what a code location needs at run time (settings.py's project root).
    for folder in ("release_assets", "releases", "prompts", "data"):
        assert f"COPY {folder} ./{folder}" in dockerfile and (REPO / folder).is_dir()
    assert "RELEASE_ASSETS_PROJECT_ROOT=/opt/release_assets" in dockerfile


def test_the_queue_limits_match_the_local_profile():
    local = yaml.safe_load((REPO / "deploy" / "dagster.postgres.yaml").read_text())["run_coordinator"]["config"]
    chart = _values()["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert chart["tagConcurrencyLimits"] == local["tag_concurrency_limits"]
    # The store volume every step pod shares is where the settings say the store is.
    launcher = _values()["runLauncher"]["config"]["k8sRunLauncher"]
    env = {e["name"]: e["value"] for e in _deployment()["env"]}
    assert launcher["volumeMounts"][0]["mountPath"] == env["RELEASE_ASSETS_STORE_ROOT"]
