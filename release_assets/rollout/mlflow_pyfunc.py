"""The code of every pyfunc model this package registers ("models from code": ``rollout/mlflow_models.py``).

MLflow copies this file into each saved model and runs it when the model loads; it sets the model to an instance
that holds nothing until ``load_context`` reads the model's ``model_config`` and artifact files. Nothing is
pickled, so loading a model runs this package's code and no bytes from the registry.
"""

from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel

from release_assets.rollout.mlflow_models import InvalidInput, open_model


class ReleaseAssetsModel(PythonModel):
    """A member's model, or a whole release, as ``model_config`` says (``open_model``)."""

    def load_context(self, context: Any) -> None:
        self._model = open_model(dict(context.model_config or {}), dict(context.artifacts or {}))

    # A DataFrame: what MLflow hands over after checking the input against the saved (column) signature. (A type
    # hint MLflow could infer a schema from would replace that signature; none would be warned about.)
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        try:
            return self._model.predict(model_input)
        except InvalidInput as exc:  # the caller's rows: HTTP 400 from `mlflow models serve`, not 500
            raise MlflowException.invalid_parameter_value(str(exc)) from None


mlflow.models.set_model(ReleaseAssetsModel())
