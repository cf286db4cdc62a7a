"""`release-assets scaffold NAME --from-table PATH --target COLUMN` (issue #25, item 9), run as a user runs it in
a project of their own: the release it writes publishes as written, a binary one and a regression one, with no
code of the project's; each mistake is one line naming the file or the column, with no traceback."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from release_assets.manifest import load_manifest
from release_assets.manifest.paths import check_paths
from release_assets_tests.conftest import REPO

EXAMPLE = REPO / "examples" / "your_project"
RUN_TIMEOUT_S = 300


def _env(project: Path) -> dict[str, str]:
    return {
        **os.environ,
        "RELEASE_ASSETS_PROJECT_ROOT": str(project),
        "RELEASE_ASSETS_STORE_ROOT": str(project / ".release_store"),
        "RELEASE_ASSETS_MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
        "RELEASE_ASSETS_MLFLOW_ARTIFACT_ROOT": str(project / "mlartifacts"),
        "DAGSTER_HOME": str(project / ".dagster"),
    }


def _cli(project: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "release_assets.cli.main", *args]
    return subprocess.run(
        command, env=_env(project), cwd=project, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "team"
    (root / "data").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "team"\nversion = "0.1.0"\n')
    for name in ("loans.csv", "rents.csv"):
        shutil.copy(EXAMPLE / "data" / name, root / "data" / name)
    return root


def test_scaffolded_releases_publish_as_written(project):
    for name, target in (("loans", "defaulted"), ("rents", "rent")):
        done = _cli(project, "scaffold", name, "--from-table", f"data/{name}.csv", "--target", target)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.startswith(f"wrote releases/{name}.yaml: "), done.stdout
        check_paths(load_manifest(project / "releases" / f"{name}.yaml"), project)

    released = _cli(project, "release", "loans", "rents", "--quiet")
    output = released.stdout + released.stderr
    assert released.returncode == 0, output
    assert "== loans: published" in released.stdout and "== rents: published" in released.stdout, output
    assert "[FAIL]" not in released.stdout, output
    assert "roc_auc_gate: roc_auc = " in released.stdout and "r2_gate: r2 = " in released.stdout, output


ONE_VALUE = "id,x,y\n" + "".join(f"r{i},{i},same\n" for i in range(10))

MISTAKES = {
    "missing file": (
        ["scaffold", "loans", "--from-table", "data/lons.csv", "--target", "defaulted"],
        r"data/lons\.csv: table file not found",
    ),
    "unknown target column": (
        ["scaffold", "loans", "--from-table", "data/loans.csv", "--target", "default"],
        r"loans\.csv: no column 'default' to predict \(the file has: loan_id, income, age, region, amount, applied, "
        r"defaulted\)",
    ),
    "a target with one value": (
        ["scaffold", "flat", "--from-table", "data/flat.csv", "--target", "y"],
        r"flat\.csv: target 'y' has 1 distinct value \('same'\): there is nothing to learn",
    ),
    "a task the target cannot have": (
        ["scaffold", "loans", "--from-table", "data/loans.csv", "--target", "region", "--task", "regression"],
        r"loans\.csv: target 'region' is str; a regression target must be a number",
    ),
    "not a release name": (
        ["scaffold", "Loans-2", "--from-table", "data/loans.csv", "--target", "defaulted"],
        r"'Loans-2' is not a release name",
    ),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_each_mistake_is_one_line_naming_the_file_or_the_column(project, mistake):
    (project / "data" / "flat.csv").write_text(ONE_VALUE)
    args, expected = MISTAKES[mistake]
    done = _cli(project, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert re.fullmatch(f"FAILED: .*{expected}.*\n", done.stderr), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (project / "releases").exists() or not any((project / "releases").iterdir())


def test_an_existing_release_file_is_never_overwritten(project):
    (project / "releases").mkdir()
    (project / "releases" / "loans.yaml").write_text("# mine\n")
    done = _cli(project, "scaffold", "loans", "--from-table", "data/loans.csv", "--target", "defaulted")
    assert done.returncode == 2 and "releases/loans.yaml: already exists" in done.stderr, done.stderr
    assert (project / "releases" / "loans.yaml").read_text() == "# mine\n"
