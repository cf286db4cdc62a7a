"""Settings own the environment: every RELEASE_ASSETS_* variable is a typed, described, validated field, nothing else
in the package reads one, and `release-assets config` lists them all with secrets masked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from release_assets.cli.main import main
from release_assets.core.settings import ENV_PREFIX, Settings, env_name, get_settings, unknown_variables

REPO = Path(__file__).resolve().parent.parent
NAMED = re.compile(r"\bRELEASE_ASSETS_[A-Z0-9_]*[A-Z0-9]\b")
# Named in deploy/ and bench/ but read by something else: Grafana's provisioning file expands this one, and the
# scale stack (bench/support/services.py) finds the machine's Postgres and RabbitMQ with RELEASE_ASSETS_TEST_*.
NOT_OURS = {"RELEASE_ASSETS_DASHBOARDS"}
HARNESS = "RELEASE_ASSETS_TEST_"
FIELDS = {env_name(name) for name in Settings.model_fields}


@pytest.fixture
def clean_env(monkeypatch):
    """No RELEASE_ASSETS_* variable from the shell running the tests; the cached settings dropped after."""
    import os

    for name in [n for n in os.environ if n.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_every_variable_the_package_deploy_and_bench_name_is_a_setting():
    named = {}
    for folder, pattern in (("release_assets", "*.py"), ("deploy", "*"), ("bench", "*.py")):
        for path in (REPO / folder).rglob(pattern):
            if path.is_file() and path.suffix in {".py", ".yaml", ".yml", ".md", ""}:
                for name in NAMED.findall(path.read_text(encoding="utf-8", errors="replace")):
                    named.setdefault(name, path.relative_to(REPO))
    known = FIELDS | NOT_OURS
    unknown = {name: str(path) for name, path in named.items() if name not in known and not name.startswith(HARNESS)}
    assert not unknown, f"variables named but not Settings fields: {unknown}"


def test_nothing_but_the_settings_reads_a_release_assets_variable():
    read = re.compile(r"(environ(\.get)?\s*[\[(]|getenv\()\s*[\"']RELEASE_ASSETS_")
    readers = [
        str(path.relative_to(REPO))
        for path in (REPO / "release_assets").rglob("*.py")
        if read.search(path.read_text(encoding="utf-8"))
    ]
    assert readers == []


def test_every_field_is_described():
    assert all(field.description for field in Settings.model_fields.values())


def test_an_empty_variable_is_the_default_and_a_wrong_one_names_the_variable(clean_env):
    for name in ("EXECUTOR", "MODEL_RUNTIME", "LLM_CACHE", "CELERY_TRAINING_RETRIES", "METRICS_URLS", "ACTOR"):
        clean_env.setenv(ENV_PREFIX + name, " ")
    clean_env.setenv(ENV_PREFIX + "SERVE_TOKEN", "")
    settings = Settings()
    assert (settings.executor, settings.model_runtime, settings.llm_cache) == ("in_process", "onnx", True)
    assert settings.celery_training_retries == 2 and settings.metrics_urls == ["http://127.0.0.1:8000/metrics"]
    assert settings.actor is None and settings.serve_token is None
    clean_env.setenv(ENV_PREFIX + "LLM_CACHE", "OFF")
    assert Settings().llm_cache is False
    for name, value, message in (
        ("EXECUTOR", "dask", "RELEASE_ASSETS_EXECUTOR='dask': expected one of in_process, celery, k8s"),
        ("MODEL_RUNTIME", "tf", "RELEASE_ASSETS_MODEL_RUNTIME='tf': expected one of onnx, torch"),
        ("CELERY_BROKER", "sqs://q", "RELEASE_ASSETS_CELERY_BROKER='sqs://q': expected a RabbitMQ"),
        ("PROMETHEUS_URL", "prom:9090", "RELEASE_ASSETS_PROMETHEUS_URL='prom:9090': expected an http"),
        ("CELERY_TRAINING_RETRIES", "-1", "celery_training_retries"),
        ("LLM_CACHE", "sometimes", "llm_cache"),
    ):
        clean_env.setenv(ENV_PREFIX + name, value)
        with pytest.raises(ValidationError, match=re.escape(message)):
            Settings()
        clean_env.delenv(ENV_PREFIX + name)


def test_a_secret_never_shows_in_an_error(clean_env):
    clean_env.setenv(ENV_PREFIX + "GATE_WEBHOOK", "hooks.example/T0/s3cr3t")
    with pytest.raises(ValidationError) as error:
        Settings()
    assert "RELEASE_ASSETS_GATE_WEBHOOK" in str(error.value) and "s3cr3t" not in str(error.value)


def test_config_lists_every_setting_with_secrets_masked(clean_env, capsys):
    clean_env.setenv(ENV_PREFIX + "SERVE_TOKEN", "t0ken")
    clean_env.setenv(ENV_PREFIX + "GATE_WEBHOOK", "https://hooks.example/T0/s3cr3t")
    clean_env.setenv(ENV_PREFIX + "MLFLOW_TRACKING_URI", "https://alice:pa55@mlflow.example/")
    clean_env.setenv(ENV_PREFIX + "CELERY_TRAINING_RETRIES", "0")
    clean_env.setenv(ENV_PREFIX + "STORE_ROT", "/typo")
    assert main(["config", "--json"]) == 0
    out = capsys.readouterr().out
    assert "t0ken" not in out and "s3cr3t" not in out and "pa55" not in out
    listed = json.loads(out)
    rows = {row["variable"]: row for row in listed["settings"]}
    assert set(rows) == FIELDS
    assert rows["RELEASE_ASSETS_SERVE_TOKEN"]["value"] == "********" and rows["RELEASE_ASSETS_SERVE_TOKEN"]["set"]
    assert rows["RELEASE_ASSETS_MLFLOW_TRACKING_URI"]["value"] == "https://alice:********@mlflow.example/"
    retries = rows["RELEASE_ASSETS_CELERY_TRAINING_RETRIES"]
    assert (retries["value"], retries["default"], retries["set"]) == (0, 2, True)
    assert rows["RELEASE_ASSETS_EXECUTOR"] == {
        "variable": "RELEASE_ASSETS_EXECUTOR",
        "value": "in_process",
        "set": False,
        "default": "in_process",
        "secret": False,
        "description": Settings.model_fields["executor"].description,
    }
    assert listed["unknown_variables"] == ["RELEASE_ASSETS_STORE_ROT"]

    assert main(["config"]) == 0
    text = capsys.readouterr().out
    assert "t0ken" not in text and "s3cr3t" not in text
    assert re.search(r"^\* RELEASE_ASSETS_CELERY_TRAINING_RETRIES +0 +2 +times a training step", text, re.M)
    assert "RELEASE_ASSETS_STORE_ROT: set, but no setting has this name" in text


def test_unknown_variables_ignore_other_prefixes():
    environ = {"RELEASE_ASSETS_PUBLISH": "1", "release_assets_store_rot": "x", "DAGSTER_HOME": "/h"}
    assert unknown_variables(environ) == ["release_assets_store_rot"]
