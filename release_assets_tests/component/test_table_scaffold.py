"""A release scaffolded from a table (issue #25, item 9) loads as written, as `releases/NAME.yaml` and as a dg
component's `defs.yaml`: the schema of examples/your_project's hand-written releases inferred from their tables,
the task and split chosen, gates the data and the starter model meet. Publishing one end to end is
release_assets_tests/test_scaffold_from_table.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from release_assets.component.component import ReleaseScaffolder, ReleaseScaffoldParams
from release_assets.component.table_scaffold import write_table_release
from release_assets.datasets.infer_table import TableInferenceError
from release_assets.manifest import PythonModel, TableDataset, load_manifest, load_manifests
from release_assets.manifest.paths import check_paths
from release_assets_tests.component.projects import REPO, project_env, write_project
from release_assets_tests.component.projects import dg as dg_command

EXAMPLE = REPO / "examples" / "your_project"
TYPE = "release_assets.ReleaseComponent"


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    (tmp_path / "data").mkdir()
    for name in ("loans.csv", "rents.csv"):
        shutil.copy(EXAMPLE / "data" / name, tmp_path / "data" / name)
    monkeypatch.chdir(tmp_path)  # the table is named as a person in the project names it
    return tmp_path


def _hand_written(name: str) -> TableDataset:
    manifest = load_manifest(EXAMPLE / "releases" / f"{name}.yaml")
    return next(m for m in manifest.members.values() if isinstance(m, TableDataset))


@pytest.mark.parametrize(
    ("name", "target", "task", "strategy"),
    [("loans", "defaulted", "binary", "time"), ("rents", "rent", "regression", "random")],
)
def test_the_examples_tables_scaffold_into_releases_that_load(project, name, target, task, strategy):
    out = project / "releases" / f"{name}.yaml"
    made = write_table_release(name, f"data/{name}.csv", target, out, project)

    manifest = check_paths(load_manifest(out), project)
    data, model = manifest.members["data"], manifest.members["model"]
    assert isinstance(data, TableDataset) and isinstance(model, PythonModel)
    assert (data.path, data.target, data.task, data.strategy) == (f"data/{name}.csv", target, task, strategy)
    assert model.train == "release_assets.models.starter:fit"
    # The schema a person wrote for the same table: the same columns, dtypes, id and categories.
    written = _hand_written(name)
    assert {c: s.dtype for c, s in data.columns.items()} == {c: s.dtype for c, s in written.columns.items()}
    assert data.id == written.id and data.slices == written.slices
    for column, spec in written.columns.items():
        if spec.allowed is not None:
            assert data.columns[column].allowed == sorted(spec.allowed), column
    if task == "binary":
        assert data.split.by == "applied" and data.columns["defaulted"].allowed == [0, 1]
    # Data gates at what the data shows; model gates a little below what the starter model scores.
    assert manifest.gates["data"]["invalid_rows"].max == 0 and manifest.gates["data"]["leakage"].max == 0
    assert manifest.gates["data"]["drift"].on_inconclusive == "warn"
    scores = made.baseline.metrics
    for gate, threshold in manifest.gates["model"].items():
        if gate in scores and threshold.min is not None:
            assert threshold.min <= scores[gate], gate
        if gate in scores and threshold.max is not None:
            assert threshold.max >= scores[gate], gate
    expected = {"binary": {"accuracy", "roc_auc", "calibration_error", "regression", "p95_ms"}}
    assert set(manifest.gates["model"]) == expected.get(task, {"r2", "mae", "p95_ms"})
    if task == "binary":
        assert manifest.gates["model"]["accuracy"].min > made.baseline.majority_rate
        assert manifest.gates["model"]["regression"].on_inconclusive == "warn"
    else:
        assert manifest.gates["model"]["r2"].min >= 0
    text = out.read_text()
    assert "REVIEW" in text and f"# Scaffolded from data/{name}.csv" in text


def test_a_scaffold_never_overwrites_and_names_the_file(project):
    out = project / "releases" / "loans.yaml"
    write_table_release("loans", "data/loans.csv", "defaulted", out, project)
    before = out.read_text()
    with pytest.raises(TableInferenceError, match=r"loans\.yaml: already exists"):
        write_table_release("loans", "data/loans.csv", "defaulted", out, project)
    assert out.read_text() == before


def test_a_table_outside_the_project_is_refused(project, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "loans.csv"
    shutil.copy(EXAMPLE / "data" / "loans.csv", elsewhere)
    with pytest.raises(TableInferenceError, match="outside the project"):
        write_table_release("loans", str(elsewhere), "defaulted", project / "releases" / "loans.yaml", project)
    assert not (project / "releases" / "loans.yaml").exists()


def _request(folder: Path, root: Path, **params) -> dg.ScaffoldRequest:
    return dg.ScaffoldRequest(
        type_name=TYPE,
        target_path=folder,
        scaffold_format="yaml",
        project_root=root,
        params=ReleaseScaffoldParams(**params),
    )


def test_the_dg_scaffolder_writes_the_release_as_a_defs_yaml(project):
    defs = project / "src" / "shop" / "defs"
    folder = defs / "loans"
    folder.mkdir(parents=True)  # dg makes the folder before the scaffolder runs
    ReleaseScaffolder().scaffold(_request(folder, project, from_table="data/loans.csv", target="defaulted"))

    document = yaml.safe_load((folder / "defs.yaml").read_text())
    assert document["type"] == TYPE
    assert document["attributes"]["members"]["data"]["path"] == "../../../../data/loans.csv"  # from its folder
    assert (defs / "release_platform" / "defs.yaml").is_file()
    [manifest] = load_manifests(defs, project)  # paths checked from the defs.yaml's folder
    assert manifest.name == "loans" and manifest.members["data"].task == "binary"


def test_the_dg_scaffolder_without_a_table_still_writes_the_starter_release(project):
    folder = project / "defs" / "churn"
    folder.mkdir(parents=True)
    ReleaseScaffolder().scaffold(_request(folder, project))
    assert "sklearn_dataset" in (folder / "defs.yaml").read_text()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from_table": "data/loans.csv", "target": "defaultd"}, r"no column 'defaultd' to predict"),
        ({"from_table": "data/nope.csv", "target": "x"}, r"data/nope\.csv: table file not found"),
        ({"target": "defaulted"}, r"--target and --task describe a table: name it with --from-table PATH"),
        ({"from_table": "data/loans.csv"}, r"--from-table data/loans\.csv needs --target COLUMN"),
    ],
)
def test_the_dg_scaffolders_mistakes_are_one_line_and_leave_no_folder(project, params, message):
    folder = project / "defs" / "loans"
    folder.mkdir(parents=True)
    with pytest.raises(SystemExit, match=f"^FAILED: .*{message}") as caught:
        ReleaseScaffolder().scaffold(_request(folder, project, **params))
    assert "\n" not in str(caught.value.code)
    assert not folder.exists()  # the corrected command is not refused for a folder dg made


def test_dg_scaffold_defs_takes_the_table_as_options_or_json_params(tmp_path):
    defs = write_project(tmp_path, "shop")
    (tmp_path / "data").mkdir()
    shutil.copy(EXAMPLE / "data" / "rents.csv", tmp_path / "data" / "rents.csv")
    env = project_env(tmp_path)
    base = [*dg_command(sys.executable), "scaffold", "defs", TYPE]
    runs = {
        "rents": ["rents", "--from-table", "data/rents.csv", "--target", "rent"],
        "prices": ["prices", "--json-params", '{"from_table": "data/rents.csv", "target": "rent"}'],
    }
    for name, args in runs.items():
        done = subprocess.run([*base, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        document = yaml.safe_load((defs / name / "defs.yaml").read_text())
        assert document["attributes"]["name"] == name
        assert document["attributes"]["members"]["data"]["task"] == "regression"
    failed = subprocess.run(
        [*base, "bad", "--from-table", "data/rents.csv", "--target", "rnt"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert failed.returncode != 0 and "FAILED: " in failed.stderr and "Traceback" not in failed.stderr, failed.stderr
    assert not (defs / "bad").exists()
    assert [m.name for m in load_manifests(defs, tmp_path)] == ["prices", "rents"]
