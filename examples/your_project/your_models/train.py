"""Training functions a release names (`train: your_models.train:fit_default_risk`). Each takes the train split's
feature columns (a DataFrame), its target (a Series) and the member's `params`, and returns a fitted estimator."""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def _features(X, categorical):
    numeric = [c for c in X.columns if c not in categorical]
    return ColumnTransformer(
        [("num", StandardScaler(), numeric), ("cat", OneHotEncoder(handle_unknown="ignore"), categorical)]
    )


def fit_default_risk(X, y, params):
    """Binary: will this loan default? A scaled, one-hot logistic regression."""
    model = Pipeline(
        [
            ("features", _features(X, ["region"])),
            ("clf", LogisticRegression(C=float(params.get("C", 1.0)), max_iter=1000)),
        ]
    )
    return model.fit(X, y)


def fit_rent(X, y, params):
    """Regression: the monthly rent of a flat, from its size, rooms and district."""
    model = Pipeline([("features", _features(X, ["district"])), ("reg", Ridge(alpha=float(params.get("alpha", 1.0))))])
    return model.fit(X, y)


def fit_broken(X, y, params):
    """Fails on purpose (the tests' bad training code)."""
    raise ValueError("the feature store is unreachable")
