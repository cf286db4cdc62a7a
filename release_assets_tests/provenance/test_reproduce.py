"""`release-assets reproduce`: a published version of a team's own release (test_your_project's `scored`: a CSV
table and a classifier another team exported to ONNX, the smallest release that reads a data file) is rebuilt
from its recorded commit in a clean worktree and matches bit for bit; after the data file it reads from outside the
repository changes, the same command names that file's member as the cause and exits 1; a unit built from a dirty
tree says it cannot be reproduced exactly.

(examples/your_project's `loans` does not reproduce: its skops model names each array file by the array's id() in
the training process, so two trainings of the same model differ in bytes; `reproduce` names
default_model/model.skops.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from release_assets_tests.gitrepo import git
from release_assets_tests.models.onnx_models import linear_onnx_classifier
from release_assets_tests.test_your_project import IMPORTED

RUN_TIMEOUT_S = 300


def _cli(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RELEASE_ASSETS_")},
        "PYTHONPATH": str(project),  # the team's package, as `pip install -e .` would make it
        "RELEASE_ASSETS_PROJECT_ROOT": str(project),
        "RELEASE_ASSETS_STORE_ROOT": str(project / ".release_store"),
        "RELEASE_ASSETS_MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
        "RELEASE_ASSETS_MLFLOW_ARTIFACT_ROOT": str(project / "mlartifacts"),
        "DAGSTER_HOME": str(project / ".dagster"),
    }
    (project / ".dagster").mkdir(exist_ok=True)
    command = [sys.executable, "-m", "release_assets.cli.main", *args]
    return subprocess.run(command, env=env, cwd=project, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def _project(tmp_path: Path) -> tuple[Path, Path]:
    """The `scored` release in a git repository of its own, its table outside it (a shared drive)."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    project = tmp_path / "project"
    (project / "releases").mkdir(parents=True)
    (project / "models").mkdir()
    shared = tmp_path / "shared" / "flowers.csv"
    shared.parent.mkdir()
    iris = load_iris()
    rows = [
        ",".join(f"{v:g}" for v in x) + f",{iris.target_names[y]}" for x, y in zip(iris.data, iris.target, strict=True)
    ]
    shared.write_text("sepal_length,sepal_width,petal_length,petal_width,species\n" + "\n".join(rows) + "\n")
    fitted = LogisticRegression(max_iter=1000).fit(iris.data, iris.target)
    linear_onnx_classifier(project / "models" / "classifier.onnx", fitted.coef_.T, fitted.intercept_)
    manifest = yaml.safe_load(IMPORTED)
    manifest["members"]["flowers"]["path"] = str(shared)
    (project / "releases" / "scored.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    (project / ".gitignore").write_text(".release_store/\n.dagster/\n*.db\nmlartifacts/\n")
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "the scored release")
    return project, shared


def test_a_published_version_reproduces_and_a_changed_data_file_is_named(tmp_path):
    project, shared = _project(tmp_path)
    published = _cli(project, "release", "scored", "--quiet")
    assert published.returncode == 0, published.stdout + published.stderr
    version = next(line.split()[-1] for line in published.stdout.splitlines() if "version:" in line)

    same = _cli(project, "reproduce", "scored", version)
    assert same.returncode == 0, same.stdout + same.stderr
    assert f"REPRODUCED: every member that defines {version} matched bit for bit" in same.stdout
    status = {line.split()[0]: line.split()[4] for line in same.stdout.splitlines() if " artifact " in line}
    assert status == {"flowers": "match", "flowers_split": "match", "classifier": "match"}, same.stdout
    assert not (project / ".git" / "worktrees").exists() or not any((project / ".git" / "worktrees").iterdir())

    # The shared table changes after the release: the commit no longer pins what the unit was built from.
    lines = shared.read_text().splitlines()
    fields = lines[1].split(",")
    fields[0] = str(float(fields[0]) + 0.5)  # one flower's sepal length
    lines[1] = ",".join(fields)
    shared.write_text("\n".join(lines) + "\n")
    changed = _cli(project, "reproduce", "scored", version)
    assert changed.returncode == 1, changed.stdout + changed.stderr
    causes = [line for line in changed.stdout.splitlines() if line.startswith("cause: ")]
    assert causes[0].startswith(f"cause: data member flowers (read from {shared}) changed: flowers/")
    status = {line.split()[0]: line.split()[4] for line in changed.stdout.splitlines() if " artifact " in line}
    assert status["flowers"] == "MISMATCH" and "NOT REPRODUCED:" in changed.stdout, changed.stdout


def test_a_unit_built_from_a_dirty_tree_says_it_cannot_be_reproduced_exactly(tmp_path):
    project, _ = _project(tmp_path)
    (project / "NOTES.txt").write_text("uncommitted")
    published = _cli(project, "release", "scored", "--quiet")
    assert published.returncode == 0, published.stdout + published.stderr
    version = next(line.split()[-1] for line in published.stdout.splitlines() if "version:" in line)
    dirty = _cli(project, "reproduce", "scored", version)
    assert dirty.returncode == 1
    assert "NOT REPRODUCIBLE EXACTLY: built from a dirty tree (uncommitted: NOTES.txt)" in dirty.stdout
