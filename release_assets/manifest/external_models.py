"""Manifest entries of the model kinds that run a team's own artifacts: ``python_model`` (a function of the team's
package trains it) and ``imported_model`` (a file trained elsewhere). Both learn from, or are evaluated on, a
``table`` dataset; how they are built and served is in ``models/python_model.py`` and ``models/imported.py``.
Either may name a function of the team's own that computes extra metrics at evaluation (``metrics:``, see
``evaluation/user_metrics.py``); each metric it returns may be gated by name.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from release_assets.manifest.models import ModelConfig

# "package.module:function": what Python entry points, Dagster and uvicorn all call an importable object.
_OBJECT_REF = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")
StoredFormat = Literal["sklearn", "onnx"]
MLFLOW_SCHEMES = ("models:/", "runs:/")


def check_object_ref(value: str) -> str:
    if not _OBJECT_REF.match(value):
        raise ValueError(f"{value!r} is not `package.module:function`")
    return value


class TeamModelConfig(ModelConfig):
    """What both kinds share: an optional function of the team's own computing extra metrics at evaluation."""

    # Called as ``function(y_true, y_pred, y_score)`` on the test split (evaluation/user_metrics.py) and returning
    # ``{name: number}``; each name may then be gated like a built-in metric. Left out of the entry's dump when
    # unset, so members that name none keep the versions they had.
    metrics: str | None = Field(default=None, exclude_if=lambda value: value is None)

    @field_validator("metrics")
    @classmethod
    def _importable_metrics(cls, value: str | None) -> str | None:
        return None if value is None else check_object_ref(value)


class PythonModel(TeamModelConfig):
    kind: Literal["python_model"]
    # Called as ``function(X, y, params)``: the train split's feature columns (a pandas DataFrame, dtypes as the
    # schema declares), its target (a Series) and this member's ``params``; returns the fitted model.
    train: str
    # How the model is stored in the bundle: "sklearn" (skops' safe format: loading runs no pickled code) or
    # "onnx" (the function returns an onnx.ModelProto, or bytes of one).
    format: StoredFormat = "sklearn"
    # Types beyond scikit-learn's, numpy's and scipy's that a skops file of this model may hold (your own
    # estimator classes): loading trusts these and nothing else.
    trusted_types: list[str] = Field(default_factory=list)

    @field_validator("train")
    @classmethod
    def _importable_name(cls, value: str) -> str:
        return check_object_ref(value)

    @property
    def module(self) -> str:
        return self.train.partition(":")[0]


class ImportedModel(TeamModelConfig):
    kind: Literal["imported_model"]
    # The model file, relative to the project root (.onnx, or .skops), or an MLflow model URI (models:/name@alias,
    # models:/name/3, runs:/<run>/<path>) resolved in the configured tracking server: onnx or skops flavors only.
    path: str
    format: StoredFormat | None = None  # from the suffix when not given (an MLflow model: from its flavor)
    # The class of each output column of a classifier, in order (by default the target's `allowed` values,
    # sorted); an ONNX model's input is one float tensor of the table's feature columns, in declared order.
    labels: list[str] | None = None
    trusted_types: list[str] = Field(default_factory=list)

    def file_format(self) -> StoredFormat:
        if self.format:
            return self.format
        return "onnx" if self.path.lower().endswith(".onnx") else "sklearn"
