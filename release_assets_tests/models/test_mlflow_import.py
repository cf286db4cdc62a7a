"""An imported_model named by an MLflow model URI: resolved in the tracking server, only its model file bundled,
a moved alias imported again, and a pickled flavor refused with what to do instead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from release_assets.manifest import parse_member
from release_assets.models.imported import RUNTIME
from release_assets.models.table_predictor import ModelFileError
from release_assets_tests.models.onnx_models import linear_onnx_classifier

FLOWERS = {
    "kind": "table",
    "path": "flowers.csv",
    "target": "species",
    "task": "multiclass",
    "columns": {
        "petal_length": {"dtype": "float"},
        "petal_width": {"dtype": "float"},
        "species": {"dtype": "str", "allowed": ["a", "b"]},
    },
    "split": {"test": 0.3},
}


@pytest.fixture()
def tracking(tmp_path, monkeypatch) -> str:
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("RELEASE_ASSETS_MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    # Artifacts in the test's folder (MLflow's default is ./mlruns in the working directory).
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("imports", artifact_location=str(tmp_path / "art")))
    return uri


def _split(tmp_path: Path) -> Path:
    from release_assets.datasets.table import build_raw, build_split

    rows = [f"{1 + i % 5},{0.2 + i % 3},a" for i in range(20)] + [f"{6 + i % 5},{2 + i % 3},b" for i in range(20)]
    (tmp_path / "flowers.csv").write_text("petal_length,petal_width,species\n" + "\n".join(rows) + "\n")
    member = parse_member("flowers", FLOWERS)
    raw, split = tmp_path / "raw", tmp_path / "split"
    raw.mkdir(), split.mkdir()
    build_raw(member, tmp_path, raw)
    build_split(member, raw, split)
    return split


def _register(tracking: str, tmp_path: Path, bias: float) -> str:
    import mlflow
    import onnx

    mlflow.set_tracking_uri(tracking)
    path = tmp_path / f"model-{bias}.onnx"
    linear_onnx_classifier(path, np.array([[-1.0, 1.0], [-1.0, 1.0]]), np.array([bias, -bias]))
    with mlflow.start_run():
        info = mlflow.onnx.log_model(onnx.load(str(path)), name="model", registered_model_name="flowers")
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("flowers", "champion", info.registered_model_version)
    return str(info.registered_model_version)


def test_a_model_in_mlflow_is_imported_by_alias_and_an_alias_move_is_a_new_input(tmp_path, tracking):
    split = _split(tmp_path)
    member = parse_member("model", {"kind": "imported_model", "data": "flowers", "path": "models:/flowers@champion"})
    first = _register(tracking, tmp_path, 7.0)
    identity = RUNTIME.source_identity(member, tmp_path)
    assert identity["version"] == first and identity["name"] == "flowers"
    out = tmp_path / "out"
    out.mkdir()
    summary = RUNTIME.build(member, split, out, tmp_path)
    assert summary["format"] == "onnx" and summary["labels"] == ["a", "b"]
    assert summary["columns"] == {"petal_length": "float", "petal_width": "float"}  # the interface it offers
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "signature.json"]  # no MLmodel, no volatile files
    predictor = RUNTIME.load(out)
    assert (
        predictor.labels[
            int(predictor.predict_proba([{"features": {"petal_length": 9.0, "petal_width": 3.0}}]).argmax())
        ]
        == "b"
    )

    _register(tracking, tmp_path, 0.0)  # the alias moves: the build's input changes, so it is imported again
    assert RUNTIME.source_identity(member, tmp_path)["version"] != first


def test_a_pickled_flavor_or_a_missing_model_is_refused_naming_the_uri(tmp_path, tracking):
    import mlflow
    from sklearn.linear_model import LogisticRegression

    split = _split(tmp_path)
    mlflow.set_tracking_uri(tracking)
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            LogisticRegression().fit([[0.0], [1.0]], [0, 1]),
            name="model",
            registered_model_name="pickled",
            serialization_format="cloudpickle",
        )
    pickled = parse_member("m", {"kind": "imported_model", "data": "flowers", "path": "models:/pickled/1"})
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ModelFileError, match=r"models:/pickled/1: flavors .*sklearn.* load by unpickling"):
        RUNTIME.build(pickled, split, out, tmp_path)
    missing = parse_member("m", {"kind": "imported_model", "data": "flowers", "path": "models:/nothing@champion"})
    with pytest.raises(ModelFileError, match=r"models:/nothing@champion: not found in MLflow"):
        RUNTIME.source_identity(missing, tmp_path)
    assert list(out.iterdir()) == []  # nothing was written for the refused model


def test_an_onnx_file_whose_input_is_not_the_tables_feature_columns_is_refused(tmp_path):
    split = _split(tmp_path)
    path = tmp_path / "three.onnx"
    linear_onnx_classifier(path, np.ones((3, 2)), np.zeros(2))  # takes 3 features; the table has 2
    member = parse_member("m", {"kind": "imported_model", "data": "flowers", "path": "three.onnx"})
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ModelFileError, match=r"three\.onnx: takes 3 features per row; the table has 2"):
        RUNTIME.build(member, split, out, tmp_path)
