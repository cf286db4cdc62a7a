"""Runs at once, as a CI system starts them (two pull requests, a push and a schedule): each run publishes what it
built, or fails, never another run's build. Whole processes on one fresh store and one fresh Dagster instance."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from bench.support.project import copy_project
from release_assets_tests.conftest import REPO

RUN_TIMEOUT_S = 300  # one iris run takes ~6 s alone; four at once on two loaded cores, far less than this


def _env(project: Path, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "RELEASE_ASSETS_PROJECT_ROOT": str(project),
        "RELEASE_ASSETS_STORE_ROOT": str(tmp_path / "store"),
        "RELEASE_ASSETS_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "RELEASE_ASSETS_MLFLOW_ARTIFACT_ROOT": str(tmp_path / "mlartifacts"),
        # A fresh instance: the runs also race to create its sqlite schemas.
        "DAGSTER_HOME": str(tmp_path / "home"),
    }


def _release(*args: str, env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "release_assets.cli.main", "release", *args, "--quiet"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _outcome(process: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return process.returncode, out, err


def _published(out: str, release: str) -> tuple[str, str, str]:
    """(status line, version, run id) of ``release`` as the run printed them."""
    status = re.search(rf"^== {release}: (.*)$", out, re.M)
    version = re.search(r"^\s+version: ([0-9a-f]{16})$", out, re.M)
    run = re.search(r"^run (\S+) finished", out, re.M)
    assert status and version and run, out
    return status.group(1), version.group(1), run.group(1)


def test_concurrent_runs_each_publish_what_they_built(tmp_path):
    project = copy_project(tmp_path / "project")
    env = _env(project, tmp_path)
    wanted = [0.333, 0.333, 0.444]
    runs = [_release("iris", "--set", f"iris:members.classifier.params.C={c}", env=env) for c in wanted]
    runs.append(_release("kbqa", env=env))  # a second release at the same time
    outcomes = [_outcome(p) for p in runs]

    releases = tmp_path / "store" / "releases"
    for c, (code, out, err) in zip([*wanted, None], outcomes, strict=True):
        release = "iris" if c is not None else "kbqa"
        assert code == 0, f"{release} C={c} failed:\n{out}\n{err[-3000:]}"
        status, version, run_id = _published(out, release)
        manifest = json.loads((releases / release / version / "manifest.json").read_text())
        assert manifest["release"] == release and manifest["version"] == version
        if c is not None:  # the printed version holds exactly the model this run was asked to build
            assert manifest["members"]["classifier"]["params"]["C"] == c, (out, manifest["members"]["classifier"])
        if status == "published":  # and a version this run published names this run as its builder
            assert manifest["lineage"]["dagster_run_id"] == run_id
        else:
            assert status.startswith("unchanged"), out
    iris_versions = {_published(out, "iris")[1] for _, out, _ in outcomes[:3]}
    assert len(iris_versions) == 2, iris_versions  # two distinct builds, each published once
    assert sorted(p.name for p in (releases / "iris").iterdir() if p.is_dir()) == sorted(iris_versions)


OPEN_INSTANCE = (
    "import sys; from pathlib import Path; from release_assets.cli.common import dagster_instance\n"
    "with dagster_instance(Path(sys.argv[1])) as instance: instance.get_runs(limit=1)"
)


def test_first_runs_at_once_leave_an_instance_every_later_run_can_open(tmp_path):
    # Each process would create the sqlite schemas and stamp its alembic revision: two heads, unusable for good.
    project = copy_project(tmp_path / "project")
    (project / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-c", OPEN_INSTANCE, str(project)]
    opening = [subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    for p in opening:
        assert p.wait(timeout=RUN_TIMEOUT_S) == 0, p.stderr.read()[-2000:]
    later = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert later.returncode == 0, later.stderr[-2000:]
    for db in (tmp_path / "home").rglob("*.db"):
        with sqlite3.connect(db) as connection:
            heads = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        assert len(heads) == 1, (db, heads)
