"""Typed settings, read from the environment (``RELEASE_ASSETS_*``) when first asked for, never at import."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _project_root() -> Path:
    """The project being worked in: the nearest folder from the working directory up that holds a
    ``pyproject.toml`` (where ``dg`` finds a project's root too), else the working directory. Never the package's
    own location: installed from a wheel, that is site-packages, not anyone's project."""
    cwd = Path.cwd().resolve()
    return next((folder for folder in (cwd, *cwd.parents) if (folder / "pyproject.toml").is_file()), cwd)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RELEASE_ASSETS_", extra="ignore")

    project_root: Path = Field(default_factory=_project_root)
    releases_dir: Path | None = None  # default: <project_root>/releases, else a dg project's defs folder
    store_root: Path | None = None  # default: <project_root>/.release_store
    environments_file: Path | None = None  # default: <project_root>/environments.yaml (optional)
    # false: a release run gates and reports but publishes nothing and writes no ledger event (pull requests).
    publish: bool = True
    # The default branch weakened gates are judged against and builds are checked to be on (git_base.py):
    # default origin/main, else main. CI sets the pull request's base branch.
    base_ref: str | None = None
    # true: promotion also refuses (without an override) a build whose git provenance is unknown (no git).
    require_git_provenance: bool = False
    store_backend: str = "local"  # "local" or "s3": where release units and the ledger are published
    s3_bucket: str | None = None
    s3_prefix: str = "release_assets"
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    # Bounds on every S3 call, so an unreachable or hanging endpoint fails a run in seconds, not minutes.
    s3_connect_timeout: float = Field(5.0, gt=0)  # seconds to establish a connection
    s3_read_timeout: float = Field(30.0, gt=0)  # seconds to wait for an answer once connected
    # Tries per call, the first included (botocore standard mode: jittered backoff between them).
    s3_max_attempts: int = Field(3, ge=1)
    mlflow_tracking_uri: str | None = None  # default: sqlite under <project_root>/.mlflow/
    mlflow_artifact_root: str | None = None  # default: <project_root>/.mlflow/artifacts
    mlflow_ui_url: str | None = None  # where people open MLflow; links in asset metadata use it
    # Bounds on every request to an MLflow tracking server (an http(s) URI), so an unreachable or hanging server
    # fails a sync or a move in seconds: MLflow's own defaults (120 s, 7 retries with backoff) took minutes.
    mlflow_timeout_s: int = Field(10, ge=1)  # seconds to connect and to wait for an answer (MLflow takes whole s)
    mlflow_max_attempts: int = Field(3, ge=1, le=11)  # tries per request, the first included (backoff 0, 2, 4 s...)

    @property
    def releases_path(self) -> Path:
        if self.releases_dir:
            return self.releases_dir
        default = self.project_root / "releases"
        if default.is_dir():
            return default
        from release_assets.manifest.defs_files import dg_defs_folder  # a dg project: its ReleaseComponents' defs.yaml

        return dg_defs_folder(self.project_root) or default

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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
