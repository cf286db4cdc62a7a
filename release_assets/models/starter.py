"""The starter model of a scaffolded table release (``train: release_assets.models.starter:fit``): a release trains
with no code of its own, and a team replaces ``train:`` with its own function when it has one.

``fit(X, y, params)`` is a ``python_model`` training function (``models/python_model.py``): ``X`` is the train
split's feature columns, typed as the table's schema declares, ``y`` the target. It returns a scikit-learn
``Pipeline``, stored through skops, so it holds only scikit-learn's own classes (no function of this module is
pickled into it: loading the bundle trusts nothing else):

- numeric columns (int, float): missing values imputed with the median, then standardised;
- text and bool columns: one-hot, a missing value its own category, at most ``max_categories`` (20) categories per
  column (rarer values share one "infrequent" column), and a value never seen in training maps to no column;
- datetime columns are dropped: a date as a raw number rarely extrapolates (a time split tests on dates later
  than any trained on), and turning it into features (day of week, age of an account) needs knowledge of the
  data. Write your own ``train:`` function to use them.

Then ``LogisticRegression`` (``C``, default 1.0) for classification, ``Ridge`` (``alpha``, default 1.0) for
regression, told apart by ``params["task"]`` when given, else by ``y`` (the runtime passes class names as
text, a regression target as floats).
"""

from __future__ import annotations

from typing import Any

NUMERIC_KINDS = "iuf"  # numpy dtype kinds: signed, unsigned, float (bool is "b")
MAX_CATEGORIES = 20


def feature_kinds(X: Any) -> tuple[list[str], list[str], list[str]]:
    """The columns that are numbers, those that are categories (text, bool), and the datetimes dropped."""
    import pandas as pd

    numeric, categorical, dropped = [], [], []
    for name in X.columns:
        dtype = X[name].dtype
        if pd.api.types.is_datetime64_any_dtype(dtype):
            dropped.append(name)
        elif pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
            categorical.append(name)
        else:
            numeric.append(name)
    return numeric, categorical, dropped


def _is_regression(y: Any, params: dict[str, Any]) -> bool:
    import pandas as pd

    if "task" in params:
        return params["task"] == "regression"
    return pd.api.types.is_float_dtype(y.dtype)  # the runtime passes class names as text


def fit(X: Any, y: Any, params: dict[str, Any]) -> Any:
    """The starter pipeline (module docstring), fitted on ``X`` and ``y``."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric, categorical, _ = feature_kinds(X)
    if not numeric and not categorical:
        raise ValueError(
            f"no column the starter model can use (datetime columns are dropped: {', '.join(map(str, X.columns))})"
        )
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric))
    if categorical:
        encoder = OneHotEncoder(
            handle_unknown="infrequent_if_exist", max_categories=int(params.get("max_categories", MAX_CATEGORIES))
        )
        parts.append(("categorical", encoder, categorical))
    features = ColumnTransformer(parts, remainder="drop")
    if _is_regression(y, params):
        estimator: Any = Ridge(alpha=float(params.get("alpha", 1.0)))
    else:
        estimator = LogisticRegression(C=float(params.get("C", 1.0)), max_iter=int(params.get("max_iter", 1000)))
    return Pipeline([("features", features), ("model", estimator)]).fit(X, y)
