"""The ``imported_model`` kind: a model trained elsewhere (an ONNX or skops file in the project), put through the
same evaluation and gates as a model trained here. Nothing is trained; the file is checked (an ONNX graph that
onnx's checker accepts and whose input takes the table's feature columns, or a skops file holding only trusted
types), copied into the bundle beside its ``signature.json``, and served through ``TablePredictor``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from release_assets.core.settings import Settings
from release_assets.core.team_code import one_line
from release_assets.datasets.build import read_jsonl
from release_assets.datasets.table import TABLE_FILE
from release_assets.manifest import ImportedModel, ModelConfig
from release_assets.models.mlflow_import import fetch, is_mlflow_uri, resolve
from release_assets.models.table_predictor import (
    ONNX_FILE,
    SKOPS_FILE,
    ModelFileError,
    TablePredictor,
    check_onnx,
    ordered_features,
    untrusted_types,
    write_signature,
)


def _check_onnx_input(path: Path, features: int) -> None:
    graph = check_onnx(path).graph
    initialisers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialisers]
    if len(inputs) != 1:
        raise ModelFileError(f"{path}: takes {len(inputs)} inputs; an imported model takes one (the feature columns)")
    dims = inputs[0].type.tensor_type.shape.dim
    width = dims[-1].dim_value if dims else 0
    if width and width != features:
        raise ModelFileError(f"{path}: takes {width} features per row; the table has {features} feature columns")


class ImportedModelRuntime:
    def code_modules(self, member: ModelConfig) -> list[str]:
        return [__name__, "release_assets.models.table_predictor"]

    def source_files(self, member: ModelConfig, project_root: Path) -> list[Path]:
        assert isinstance(member, ImportedModel)
        return [] if is_mlflow_uri(member.path) else [project_root / member.path]

    def source_identity(self, member: ModelConfig, project_root: Path) -> Any:
        """What an MLflow URI names now (read at build time, so a moved alias imports again); files have their
        digests (``source_files``)."""
        assert isinstance(member, ImportedModel)
        return resolve(member.path, Settings().tracking_uri) if is_mlflow_uri(member.path) else None

    def build(self, member: ModelConfig, split_dir: Path, out_dir: Path, project_root: Path) -> dict[str, Any]:
        assert isinstance(member, ImportedModel)
        with tempfile.TemporaryDirectory(prefix="imported-") as work:
            return self._build(member, split_dir, out_dir, project_root, Path(work))

    def _build(
        self, member: ImportedModel, split_dir: Path, out_dir: Path, project_root: Path, work: Path
    ) -> dict[str, Any]:
        fmt = member.file_format()
        if is_mlflow_uri(member.path):
            source, fmt = fetch(member.path, Settings().tracking_uri, work)
        else:
            source = project_root / member.path
        if not source.is_file():
            raise ModelFileError(f"{source}: model file not found (the member's `path:`)")
        table = json.loads((split_dir / TABLE_FILE).read_text())
        if member.labels is not None:
            if table["task"] == "regression":
                raise ModelFileError("labels: a regression model has no classes")
            table = {**table, "labels": list(member.labels)}
        if fmt == "onnx":
            _check_onnx_input(source, len(table["features"]))
            shutil.copyfile(source, out_dir / ONNX_FILE)
        else:
            refused = untrusted_types(source, member.trusted_types)
            if refused:
                raise ModelFileError(
                    f"{source}: holds types nobody trusted: {', '.join(refused)} (see `trusted_types:`)"
                )
            shutil.copyfile(source, out_dir / SKOPS_FILE)
        write_signature(out_dir, table, fmt, member.trusted_types)
        rows = read_jsonl(split_dir / "test.jsonl")[:5]
        try:  # it answers rows of this table, as evaluation and serving will ask it
            loaded = TablePredictor(out_dir)
            (loaded.predict_values if table["task"] == "regression" else loaded.predict_proba)(rows)
        except ModelFileError:
            raise
        except Exception as exc:  # onnxruntime or the estimator, on inputs it does not take
            raise ModelFileError(f"{source}: cannot predict rows of this table: {one_line(exc)}") from None
        columns = {name: spec["dtype"] for name, spec in ordered_features(table).items()}  # what it reads
        return {
            "labels": table["labels"],
            "columns": columns,
            "task": table["task"],
            "format": fmt,
            "source": member.path,
        }

    def load(self, model_dir: Path, runtime: str | None = None) -> TablePredictor:
        return TablePredictor(model_dir)


RUNTIME = ImportedModelRuntime()
