"""Shared fixtures: a throwaway copy of the project (so tests can break data and prompts), tiny model params."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent

# Small enough to train in seconds, large enough that the pipeline is the real one.
TINY_PARAMS = {
    "intent_model": {"layers": 1, "hidden": 32, "heads": 2, "epochs": 2, "vocab_size": 600, "max_length": 48},
    "vision_model": {"epochs": 1, "channels": 4},
}
# Tiny models are weak; these thresholds keep gates meaningful without demanding production accuracy.
TINY_GATES = {
    "intent_model": {"accuracy": {"min": 0.0}, "p95_ms": {"max": 1000}},
    "vision_model": {"accuracy": {"min": 0.3}, "p95_ms": {"max": 1000}},
    "chain": {"format_valid": {"min": 0.99}, "forbidden_absent": {"min": 1.0}},
}


@pytest.fixture(autouse=True)
def _quiet_beta_warnings():
    warnings.filterwarnings("ignore", message=".*is currently in beta.*")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the releases, prompts and data that a test may edit freely."""
    return copy_project(tmp_path / "project")


def copy_project(root: Path) -> Path:
    """The repository's releases, prompts and data copied to ``root`` (generators and notes left out)."""
    for folder in ("releases", "prompts", "data"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("generate.py", "*.md"))
    return root


def edit_manifest(project: Path, release: str, fn) -> None:
    path = project / "releases" / f"{release}.yaml"
    data = yaml.safe_load(path.read_text())
    fn(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def make_tiny(project: Path) -> None:
    def shrink(data: dict) -> None:
        for member, params in TINY_PARAMS.items():
            data["members"][member]["params"] = params
        data["gates"].update(TINY_GATES)

    edit_manifest(project, "helpdesk", shrink)


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
