"""Typed settings, read from the environment (``RELEASE_ASSETS_*``) when first asked for, never at import.

Every ``RELEASE_ASSETS_*`` variable the package reads is a field here, with its description (``release-assets
config`` lists them with their values). Code that runs once per process reads :func:`get_settings` (cached); code
whose value must follow the environment at each call (a sensor tick, a model load, the definitions being built)
builds ``Settings()`` afresh.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "RELEASE_ASSETS_"
ExecutorKind = Literal["in_process", "celery", "k8s"]
EXECUTOR_KINDS: tuple[str, ...] = get_args(ExecutorKind)
ModelRuntime = Literal["onnx", "torch"]
MODEL_RUNTIMES: tuple[str, ...] = get_args(ModelRuntime)
DEFAULT_METRICS_URL = "http://127.0.0.1:8000/metrics"  # the local `release-assets serve`
DEFAULT_BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"  # a local RabbitMQ with its default user
BROKER_SCHEMES = ("pyamqp://", "amqp://", "redis://", "rediss://")
# json_schema_extra of a field that holds a credential: `release-assets config` masks its value, errors never show it
SECRET: dict[str, Any] = {"secret": True}


def _project_root() -> Path:
    """The project being worked in: the nearest folder from the working directory up that holds a
    ``pyproject.toml`` (where ``dg`` finds a project's root too), else the working directory. Never the package's
    own location: installed from a wheel, that is site-packages, not anyone's project."""
    cwd = Path.cwd().resolve()
    return next((folder for folder in (cwd, *cwd.parents) if (folder / "pyproject.toml").is_file()), cwd)


def dg_defs_folder(project_root: Path) -> Path | None:
    """The defs folder of the ``dg`` project at ``project_root`` (``src/<root_module>/defs`` or
    ``<root_module>/defs``, or the configured ``defs_module``), or None when it is not a dg project."""
    try:
        config = tomllib.loads((project_root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    project = config.get("tool", {}).get("dg", {}).get("project", {})
    if "root_module" not in project:
        return None
    module = project.get("defs_module") or f"{project['root_module']}.defs"
    relative = Path(*module.split("."))
    return next((base / relative for base in (project_root / "src", project_root) if (base / relative).is_dir()), None)


def _unset_if_blank(value: Any) -> Any:
    """An empty variable (``X=`` in a shell, a CI expression that gave nothing) counts as unset: the default."""
    if isinstance(value, str):
        if not value.strip():
            raise PydanticUseDefault()
        return value.strip()
    return value


def _http_url(value: str, name: str, secret: bool = False) -> str:
    if not value.startswith(("http://", "https://")):
        shown = "" if secret else f"={value!r}"  # a secret's value is never echoed
        raise ValueError(f"{ENV_PREFIX}{name.upper()}{shown}: expected an http:// or https:// URL")
    return value


class Settings(BaseSettings):
    # Errors name the variable; pydantic's own part never repeats the value, which may be a secret.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", hide_input_in_errors=True)

    # Where things are
    project_root: Path = Field(
        default_factory=_project_root,
        description="the project: manifests' paths, .release_store/, .mlflow/, .dagster/ (default: the nearest "
        "folder with a pyproject.toml, from the working directory up)",
    )
    releases_dir: Path | None = Field(
        None, description="where manifests are read from (default: <project_root>/releases, else a dg project's defs)"
    )
    store_root: Path | None = Field(
        None, description="build cache and published releases (default: <project_root>/.release_store)"
    )
    environments_file: Path | None = Field(
        None, description="the deployment environments (default: <project_root>/environments.yaml, optional)"
    )
    project_definitions: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="`package.module:attribute` of your project's own Dagster Definitions, loaded beside the releases "
        "(the CLI, `release_assets.definitions`): their assets can be release members (`asset:` in a table)",
    )

    # Releasing
    publish: bool = Field(
        True,
        description="false: a release run gates and reports but publishes nothing and writes no ledger event "
        "(pull requests)",
    )
    base_ref: str | None = Field(
        None,
        description="the default branch weakened gates are judged against and builds are checked to be on "
        "(default: origin/main, else main); CI sets the pull request's base branch",
    )
    data_by_reference_above: int = Field(
        256 * 1024,
        ge=0,
        description="bytes: a dataset member (or evaluation evidence) whose row files (.jsonl, .csv, .parquet) "
        "exceed this is held by reference (sha256, in the store's data/), not copied into every bundle; a member "
        "with `asset:` always is; 0 holds every data file by reference",
    )
    require_git_provenance: bool = Field(
        False,
        description="true: promotion also refuses (without an override) a build whose git provenance is unknown",
    )
    actor: str | None = Field(
        None,
        description="who promotes, approves, rolls back or stops a canary when --by/--approved-by is not given "
        "(default: the OS user)",
    )

    # Signing (provenance/): OpenSSF model signing of each published unit, its attestations signed with the same key
    signing_mode: Literal["key", "keyless"] = Field(
        "key",
        description="key: sign with RELEASE_ASSETS_SIGNING_KEY(_FILE) when one is set (else publish unsigned); "
        "keyless: Sigstore with the CI runner's OIDC identity (GitHub Actions, `id-token: write`)",
    )
    signing_key: str | None = Field(
        None,
        description="the elliptic-curve private key (unencrypted PEM) that signs published units; or _FILE",
        json_schema_extra=SECRET,
    )
    signing_key_file: Path | None = Field(None, description="a file holding the signing key (PEM)")
    signing_identity: str | None = Field(
        None, description="keyless: the identity recorded as signer (default: $GITHUB_WORKFLOW_REF)"
    )
    builder_id: str | None = Field(
        None,
        description="the builder named in the SLSA provenance (default: the GitHub Actions workflow run's URL in "
        "CI, else release-assets on this host)",
    )

    # The release store
    store_backend: Literal["local", "s3"] = Field(
        "local", description="where release units and the ledger are published: local or s3"
    )
    s3_bucket: str | None = Field(None, description="the bucket of the s3 store backend")
    s3_prefix: str = Field("release_assets", description="key prefix in the bucket")
    s3_endpoint_url: str | None = Field(None, description="an S3-compatible endpoint (default: AWS itself)")
    s3_region: str | None = Field(None, description="the bucket's region")
    # Bounds on every S3 call, so an unreachable or hanging endpoint fails a run in seconds, not minutes.
    s3_connect_timeout: float = Field(5.0, gt=0, description="seconds to establish a connection to S3")
    s3_read_timeout: float = Field(30.0, gt=0, description="seconds to wait for S3's answer once connected")
    s3_max_attempts: int = Field(
        3, ge=1, description="tries per S3 call, the first included (botocore standard mode: jittered backoff)"
    )

    # MLflow
    mlflow_tracking_uri: str | None = Field(
        None, description="the MLflow tracking server (default: sqlite under <project_root>/.mlflow/)"
    )
    mlflow_artifact_root: str | None = Field(
        None, description="where MLflow keeps artifacts (default: <project_root>/.mlflow/artifacts)"
    )
    mlflow_ui_url: str | None = Field(None, description="where people open MLflow; links in asset metadata use it")
    # Bounds on every request to an MLflow tracking server (an http(s) URI), so an unreachable or hanging server
    # fails a sync or a move in seconds: MLflow's own defaults (120 s, 7 retries with backoff) took minutes.
    mlflow_timeout_s: int = Field(
        10, ge=1, description="seconds per request to an MLflow tracking server, to connect and to answer (whole s)"
    )
    mlflow_max_attempts: int = Field(
        3, ge=1, le=11, description="tries per MLflow request, the first included (backoff 0 s, 2 s, 4 s...)"
    )

    # Executors (resources/executors.py): read when definitions load and when a Celery run starts
    executor: ExecutorKind = Field(
        "in_process", description="what runs a release's steps: in_process, celery (Celery workers) or k8s (pods)"
    )
    celery_broker: str = Field(
        DEFAULT_BROKER, description="the Celery broker: a RabbitMQ (pyamqp://) or Redis (redis://) URL"
    )
    celery_backend: str | None = Field(
        None, description="the Celery result backend (default: rpc:// on RabbitMQ, the broker itself on Redis)"
    )
    celery_queue_prefix: str = Field(
        "", description="prefix of the training and evaluation queues (keeps deployments on one broker apart)"
    )
    celery_training_retries: int = Field(
        2, ge=0, description="times a training step whose Celery worker process was lost is submitted again"
    )

    # Serving and tracing
    model_runtime: ModelRuntime = Field(
        "onnx",
        description="what runs the torch-trained models in serving, evaluation and gates: onnx (onnxruntime, no "
        "torch import) or torch; a model published without model.onnx always uses torch",
    )
    serve_token: str | None = Field(
        None,
        description="bearer token `serve` requires on predict (default: none, no authentication)",
        json_schema_extra=SECRET,
    )
    trace_redact: Path | None = Field(
        None, description="a YAML or JSON file of trace redaction rules (default: the built-in rules)"
    )
    llm_cache: bool = Field(True, description="false/off: LLM steps ask the model every time, ignoring the cache")

    # Alerts and live metrics
    gate_webhook: str | None = Field(
        None,
        description="URL the failed-gate sensor and the canary monitor POST alerts to as JSON (default: none)",
        json_schema_extra=SECRET,  # a chat webhook's URL is its credential
    )
    prometheus_url: str | None = Field(
        None, description="Prometheus the canary monitor queries (default: the servers of RELEASE_ASSETS_METRICS_URLS)"
    )
    metrics_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [DEFAULT_METRICS_URL],
        description="comma-separated /metrics URLs the canary monitor reads without RELEASE_ASSETS_PROMETHEUS_URL",
    )

    @field_validator(
        "actor",
        "celery_backend",
        "celery_training_retries",
        "trace_redact",
        "llm_cache",
        "signing_mode",  # a CI variable that is not set (`${{ vars.RELEASE_ASSETS_SIGNING_MODE }}`) gives ""
        "signing_key_file",
        "signing_identity",
        "builder_id",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return _unset_if_blank(value)

    @field_validator("executor", "model_runtime", mode="before")
    @classmethod
    def _one_of(cls, value: Any, info: ValidationInfo) -> Any:
        value = _unset_if_blank(value)
        choices = EXECUTOR_KINDS if info.field_name == "executor" else MODEL_RUNTIMES
        if value not in choices:
            name = f"{ENV_PREFIX}{str(info.field_name).upper()}"
            raise ValueError(f"{name}={value!r}: expected one of {', '.join(choices)}")
        return value

    @field_validator("celery_broker", mode="before")
    @classmethod
    def _broker(cls, value: Any) -> Any:
        value = _unset_if_blank(value)
        if isinstance(value, str) and not value.startswith(BROKER_SCHEMES):
            raise ValueError(
                f"{ENV_PREFIX}CELERY_BROKER={value!r}: expected a RabbitMQ (pyamqp://) or Redis (redis://) URL"
            )
        return value

    @field_validator("gate_webhook", "prometheus_url", mode="before")
    @classmethod
    def _url(cls, value: Any, info: ValidationInfo) -> Any:
        value = _unset_if_blank(value)
        name = str(info.field_name)
        return _http_url(value, name, secret=name == "gate_webhook") if isinstance(value, str) else value

    @field_validator("metrics_urls", mode="before")
    @classmethod
    def _urls(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if not value.strip():
            raise PydanticUseDefault()
        urls = [u.strip() for u in value.split(",") if u.strip()]
        if not urls:
            raise ValueError(f"{ENV_PREFIX}METRICS_URLS: {value!r} lists no URL")
        return [_http_url(u, "metrics_urls") for u in urls]

    @field_validator("celery_queue_prefix", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("serve_token", "signing_key", mode="before")
    @classmethod
    def _token(cls, value: Any) -> Any:
        # Only the empty string is "no token": a token of spaces is a (bad) token, never silently no authentication.
        return None if value == "" else value

    @property
    def releases_path(self) -> Path:
        if self.releases_dir:
            return self.releases_dir
        default = self.project_root / "releases"
        if default.is_dir():
            return default
        return dg_defs_folder(self.project_root) or default  # a dg project: its ReleaseComponents' defs.yaml

    @property
    def store_path(self) -> Path:
        return self.store_root or self.project_root / ".release_store"

    @property
    def environments_path(self) -> Path:
        return self.environments_file or self.project_root / "environments.yaml"

    @property
    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        (self.project_root / ".mlflow").mkdir(exist_ok=True)
        return f"sqlite:///{self.project_root / '.mlflow' / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str:
        return self.mlflow_artifact_root or str(self.project_root / ".mlflow" / "artifacts")

    @property
    def celery_result_backend(self) -> str:
        """``celery_backend``, else rpc:// (results back over AMQP) on RabbitMQ and the broker itself on Redis."""
        if self.celery_backend:
            return self.celery_backend
        return "rpc://" if "amqp" in self.celery_broker.split("://")[0] else self.celery_broker


def env_name(field: str) -> str:
    """The variable a field is read from: ``RELEASE_ASSETS_<FIELD>``."""
    return f"{ENV_PREFIX}{field.upper()}"


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """``RELEASE_ASSETS_*`` variables set in ``environ`` (default: the process's) that name no setting. Settings
    ignore them, so a misspelt one would otherwise go unnoticed."""
    environ = os.environ if environ is None else environ
    known = {env_name(field) for field in Settings.model_fields}
    return sorted(name for name in environ if name.upper().startswith(ENV_PREFIX) and name.upper() not in known)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
