"""A team's own project, outside this package, released through the CLI as a user would (issue #25): a binary
classifier and a regression model trained by the project's own functions from CSV tables with declared schemas,
and a classifier trained elsewhere, imported as an ONNX file. Each is published, verified, answers requests,
promoted; a gate made to fail holds its release with the reason; every mistake a user can make in the new fields
is one line naming the file, the field and the cause, and publishes nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from release_assets_tests.conftest import REPO
from release_assets_tests.models.onnx_models import linear_onnx_classifier

EXAMPLE = REPO / "examples" / "your_project"
RUN_TIMEOUT_S = 300


def _env(project: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(project),  # the team's package, as `pip install -e .` in its project would make it
        "RELEASE_ASSETS_PROJECT_ROOT": str(project),
        "RELEASE_ASSETS_STORE_ROOT": str(project / ".release_store"),
        "RELEASE_ASSETS_MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
        "RELEASE_ASSETS_MLFLOW_ARTIFACT_ROOT": str(project / "mlartifacts"),
        "DAGSTER_HOME": str(project / ".dagster"),
        # The team's own Dagster assets (flat_prices takes one as a member), loaded beside the releases.
        "RELEASE_ASSETS_PROJECT_DEFINITIONS": "your_models.definitions:defs",
    }


def _cli(project: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "release_assets.cli.main", *args]
    return subprocess.run(
        command, env=_env(project), cwd=project, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, input=stdin
    )


IMPORTED = """
name: scored
description: A species classifier trained elsewhere, imported as ONNX and put through the same gates.
members:
  flowers:
    kind: table
    path: data/flowers.csv
    target: species
    task: multiclass
    columns:
      sepal_length: {dtype: float, min: 0}
      sepal_width: {dtype: float, min: 0}
      petal_length: {dtype: float, min: 0}
      petal_width: {dtype: float, min: 0}
      species: {dtype: str, allowed: [setosa, versicolor, virginica]}
    split: {test: 0.3, seed: 1}
  classifier:
    kind: imported_model
    data: flowers
    path: models/classifier.onnx
gates:
  flowers: {invalid_rows: {max: 0}}
  classifier:
    accuracy: {min: 0.9}
    min_class_recall: {min: 0.8}
"""


def copy_project(root: Path) -> Path:
    """examples/your_project, plus a classifier another team trained and exported to ONNX (release `scored`)."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    shutil.copytree(
        EXAMPLE, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", ".release_store", ".dagster")
    )
    iris = load_iris()
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    rows = [
        "{},{}".format(",".join(f"{v:g}" for v in x), iris.target_names[y])
        for x, y in zip(iris.data, iris.target, strict=True)
    ]
    (root / "data" / "flowers.csv").write_text(",".join([*names, "species"]) + "\n" + "\n".join(rows) + "\n")
    fitted = LogisticRegression(max_iter=1000).fit(iris.data, iris.target)
    (root / "models").mkdir()
    linear_onnx_classifier(root / "models" / "classifier.onnx", fitted.coef_.T, fitted.intercept_)
    (root / "releases" / "scored.yaml").write_text(IMPORTED)
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("your_project"))


# A binary and a regression python_model from CSVs, an imported ONNX classifier, a model whose table is the team's
# own Dagster asset, and a chain whose steps are the team's Python functions.
EVERY_RELEASE = ("loans", "rents", "scored", "flat_prices", "desk")


def _version(out: str, release: str) -> str:
    match = re.search(rf"^== {release}: published\n\s+version: ([0-9a-f]{{16}})$", out, re.M)
    assert match, out
    return match.group(1)


def test_a_teams_own_models_are_published_verified_served_and_promoted(project):
    done = _cli(project, "release", *EVERY_RELEASE)
    assert done.returncode == 0, done.stdout + done.stderr
    versions = {name: _version(done.stdout, name) for name in EVERY_RELEASE}
    assert "roc_auc_gate: roc_auc = " in done.stdout and "r2_gate: r2 = " in done.stdout, done.stdout

    synced = _cli(project, "registry", "sync")  # MLflow: a run per version, each model member a model version
    assert synced.returncode == 0 and "loans.default_model v1" in synced.stdout, synced.stdout + synced.stderr
    for name, version in versions.items():
        bundle = project / ".release_store" / "releases" / name / version / "bundle.tar.gz"
        verified = _cli(project, "verify", str(bundle))
        assert verified.returncode == 0, verified.stdout + verified.stderr
        promoted = _cli(project, "promote", name, version, "--approved-by", "ci@example.com", "--reason", "tests")
        assert promoted.returncode == 0, promoted.stdout + promoted.stderr

    # The served answer of each, through the server's own code, for a request shaped by the table's schema.
    loan = {"features": {"income": 30000.0, "age": 30, "region": "east", "amount": 25000.0}}
    answered = json.loads(_cli(project, "predict", "loans", "--json", "-", stdin=json.dumps(loan)).stdout)
    assert answered["label"] in {"0", "1"} and set(answered["probabilities"]) == {"0", "1"}, answered
    flat = {"features": {"area_m2": 80.0, "rooms": 3, "district": "centre"}}
    rent = json.loads(_cli(project, "predict", "rents", "--json", "-", stdin=json.dumps(flat)).stdout)
    assert 1200 < rent["prediction"] < 2600, rent  # 80 m² at 22/m² plus 3 rooms at 40, give or take the noise
    flower = {"features": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}}
    assert json.loads(_cli(project, "predict", "scored", "--json", "-", stdin=json.dumps(flower)).stdout)["label"] == (
        "setosa"
    )
    from_asset = json.loads(_cli(project, "predict", "flat_prices", "--json", "-", stdin=json.dumps(flat)).stdout)
    assert from_asset["prediction"] == pytest.approx(rent["prediction"]), "the same rows, the same model"
    message = {"message": "Where is order 54321?"}
    routed = json.loads(_cli(project, "predict", "desk", "--json", "-", stdin=json.dumps(message)).stdout)
    assert (routed["intent"], routed["reply"].strip()) == ("order_status", "Order 54321 is on its way."), routed
    bad = {"features": {**flat["features"], "district": "moon"}}
    refused = _cli(project, "predict", "rents", "--json", "-", stdin=json.dumps(bad))
    assert refused.returncode != 0 and "features.district" in refused.stderr + refused.stdout, refused

    _serve_over_http(project, flat, bad)

    # A gate made to fail holds the release with its reason; nothing new is published.
    held = _cli(project, "release", "rents", "--set", "rents:gates.rent_model.mae.max=10")
    assert held.returncode != 0 and "== rents: HELD BACK" in held.stdout, held.stdout + held.stderr
    assert re.search(r"\[FAIL\] rent_model_report mae_gate: mae = [\d.]+ violates the gate <= 10", held.stdout)


def _serve_over_http(project: Path, flat: dict, bad: dict) -> None:
    """The champions over HTTP, through the server's own app: an answer, and a bad column as a 422 naming it."""
    from starlette.testclient import TestClient

    from release_assets.release.store import LocalReleaseStore
    from release_assets.serving.flags import store_flags_dir
    from release_assets.serving.server import build_server

    store = LocalReleaseStore(project / ".release_store")
    server = build_server(
        store,
        ["loans", "rents"],
        cache_dir=project / "serve-cache",
        flags_dir=store_flags_dir(store),
        trace_path=project / "traces.jsonl",
    )
    try:
        client = TestClient(server.app)
        assert client.get("/readyz").status_code == 200
        answered = client.post("/v1/rents/predict", json=flat)
        assert answered.status_code == 200 and answered.json()["prediction"] > 0, answered.text
        refused = client.post("/v1/rents/predict", json=bad)
        assert refused.status_code == 422 and "features.district" in refused.text, refused.text
        missing = client.post("/v1/loans/predict", json={"features": {"income": 1.0, "age": 30, "region": "east"}})
        assert missing.status_code == 422 and "features.amount" in missing.text, missing.text
    finally:
        server.close()


def test_editing_the_teams_training_code_retrains_that_model_and_nothing_else(project):
    from release_assets.core.hashing import CodeInputs

    sys.path.insert(0, str(project))
    try:
        before = CodeInputs(["your_models.train"]).version()
        train = project / "your_models" / "train.py"
        original = train.read_text()
        train.write_text(original + "\n# a comment is an edit too\n")
        from release_assets.core import hashing

        hashing.module_source.cache_clear()
        assert CodeInputs(["your_models.train"]).version() != before
        assert "your_models.train" in CodeInputs(["release_assets.models.python_model", "your_models.train"]).modules
        train.write_text(original)
        hashing.module_source.cache_clear()
    finally:
        sys.path.remove(str(project))


MISTAKES = {
    "unknown kind": (
        ("releases/loans.yaml", "kind: python_model", "kind: pyton_model"),
        r"loans\.yaml: members\.default_model\.kind: unknown kind 'pyton_model' \(installed kinds: .*python_model",
    ),
    "missing column": (
        ("data/loans.csv", "loan_id,income,", "loan_id,salary,"),
        r"loans\.csv: declared column 'income' missing",
    ),
    "wrong dtype": (
        ("data/loans.csv", "L0001,83936.97,38,", "L0001,83936.97,thirty-eight,"),
        r"invalid_rows = 1 violates the gate <= 0.*|L0001.*age.*'thirty-eight' is not a number",
    ),
    "train does not import": (
        ("releases/loans.yaml", "your_models.train:fit_default_risk", "your_modles.train:fit_default_risk"),
        r"loans\.yaml: members\.default_model\.train: 'your_modles\.train:fit_default_risk' does not import: no module",
    ),
    "train raises": (
        ("releases/loans.yaml", "your_models.train:fit_default_risk", "your_models.train:fit_broken"),
        r"train: your_models\.train:fit_broken raised ValueError: the feature store is unreachable",
    ),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_each_mistake_is_one_line_naming_the_file_the_field_and_the_cause(project, tmp_path, mistake):
    (relative, old, new), expected = MISTAKES[mistake]
    copy = tmp_path / "project"
    shutil.copytree(
        project, copy, ignore=shutil.ignore_patterns(".release_store", ".dagster", "mlflow.db", "mlartifacts")
    )
    path = copy / relative
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    done = _cli(copy, "release", "loans")
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert re.search(expected, output), output
    assert "Traceback" not in output, output
    assert not (copy / ".release_store" / "releases" / "loans").exists() or not any(
        (copy / ".release_store" / "releases" / "loans").glob("*/bundle.tar.gz")
    ), "a failed release published"


def test_a_model_file_that_is_not_onnx_is_refused_naming_it(project, tmp_path):
    copy = tmp_path / "project"
    shutil.copytree(
        project, copy, ignore=shutil.ignore_patterns(".release_store", ".dagster", "mlflow.db", "mlartifacts")
    )
    (copy / "models" / "classifier.onnx").write_text("not a model\n")
    done = _cli(copy, "release", "scored")
    output = done.stdout + done.stderr
    assert done.returncode != 0 and re.search(r"classifier\.onnx: not an ONNX model", output), output
    assert "Traceback" not in output, output


def test_a_member_taken_from_the_teams_dagster_asset_is_downstream_of_it_and_named_when_missing(project, monkeypatch):
    import dagster as dg

    from release_assets.component.wiring import resources_for
    from release_assets.core.settings import Settings
    from release_assets.definitions import build_defs
    from release_assets.manifest import ManifestError, load_manifest

    monkeypatch.syspath_prepend(str(project))
    from your_models.definitions import defs as team_defs

    manifest = load_manifest(project / "releases" / "flat_prices.yaml")
    settings = Settings(project_root=project, store_root=project / ".release_store_graph")
    defs = build_defs([manifest], project, resources_for(settings), team_defs)
    graph = defs.resolve_asset_graph()
    raw = dg.AssetKey(["flat_prices", "flats"])
    assert dg.AssetKey(["features", "flats"]) in graph.get(raw).parent_keys  # upstream of the release in the UI
    assert (
        dg.AssetKey(["features", "flats"])
        in defs.resolve_job_def("flat_prices_release").asset_layer.selected_asset_keys
    )
    with pytest.raises(ManifestError, match=r"members\.flats\.asset: features/flats is not an asset here"):
        build_defs([manifest], project, resources_for(settings), None)


def test_the_wheel_in_a_fresh_venv_releases_the_teams_project(tmp_path):
    """Issue #25's user, whole: release_assets from its wheel alone in a new venv, the team's package installed
    beside it, `release-assets release` run in the team's project (found from the working directory, no settings)."""
    from release_assets_tests.component.projects import build_wheel, fresh_venv, project_env, run

    wheel = build_wheel(tmp_path / "build")
    project = copy_project(tmp_path / "your_project")
    python = fresh_venv(project / ".venv", wheel)
    site = next((project / ".venv" / "lib").glob("python3*/site-packages"))
    (site / "_your_models.pth").write_text(str(project) + "\n")  # as `pip install -e .` of the team's project
    env = {
        **project_env(project, project / ".venv"),
        "RELEASE_ASSETS_PROJECT_DEFINITIONS": "your_models.definitions:defs",
    }
    where = run([str(python), "-c", "import release_assets; print(release_assets.__file__)"], project, env)
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout + where.stderr

    cli = str(project / ".venv" / "bin" / "release-assets")
    released = run([cli, "release", *EVERY_RELEASE], project, env, timeout=600)
    assert released.returncode == 0, released.stdout + released.stderr
    for name in EVERY_RELEASE:
        version = _version(released.stdout, name)
        assert (project / ".release_store" / "releases" / name / version / "bundle.tar.gz").is_file()
    kinds = run(
        [str(python), "-c", "from release_assets.manifest import installed_kinds; print(*installed_kinds())"],
        project,
        env,
    )
    assert {"table", "python_model", "imported_model"} <= set(kinds.stdout.split()), kinds.stdout + kinds.stderr


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        (
            "no_such_pkg.definitions:defs",
            r"RELEASE_ASSETS_PROJECT_DEFINITIONS=no_such_pkg\.definitions:defs: No module",
        ),
        ("your_models.train:fit_rent", r"your_models\.train:fit_rent: TypeError: fit_rent\(\) missing 3"),
        ("your_models.definitions:DATA", r"your_models\.definitions:DATA: a PosixPath, not a dagster Definitions"),
        ("your_models.definitions:nothing", r"your_models\.definitions:nothing: .*nothing"),
    ],
)
def test_a_project_definitions_setting_that_names_no_definitions_is_one_line(project, monkeypatch, setting, says):
    from release_assets.core.settings import Settings
    from release_assets.definitions import project_definitions
    from release_assets.manifest import ManifestError

    monkeypatch.syspath_prepend(str(project))
    with pytest.raises(ManifestError, match=says):
        project_definitions(Settings(project_definitions=setting))
