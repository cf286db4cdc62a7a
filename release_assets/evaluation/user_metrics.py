"""A team's own metrics: the function a ``python_model`` or ``imported_model`` member names in ``metrics:``
(``"package.module:function"``), called once per evaluation on the test split.

It is called as ``function(y_true, y_pred, y_score)``, all numpy arrays in test-split order:

- ``y_true``: the targets; class names (strings, as the table's ``label`` holds them) for a classifier, floats for
  a regression model;
- ``y_pred``: the model's predictions, in the same form;
- ``y_score``: a binary classifier's probability of its positive class (the table's `positive:`, else the
  second of its labels), one float per row; a multiclass classifier's probability matrix, one column per label
  in the model's label order; ``None`` for a regression model.

It returns a dict of metric name to number. Each is added to the report's metrics (``report.json``, ``report.md``,
the asset's metadata) and may be gated by name in the manifest like a built-in metric. A value of ``None`` or NaN
is "not measured": left out, and a gate on it fails. A name the evaluation already reports (``accuracy``, ``mae``,
``test_rows``...) or a gate of the shared table is refused, so a gate never reads the team's figure for the
built-in one. A function that cannot be imported, raises, or returns anything else is an error naming the field
``metrics`` and the cause, on one line.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Collection, Mapping
from typing import Any

import numpy as np

from release_assets.core.team_code import TeamCodeError, import_function, one_line
from release_assets.manifest.gates import RULES


class MetricsError(RuntimeError):
    """The member's ``metrics:`` function could not be imported, raised, or returned something unusable."""


def metrics_function(ref: str) -> Callable[..., Any]:
    """The function ``ref`` names (``package.module:function``), imported now."""
    try:
        return import_function(ref)
    except TeamCodeError as exc:
        raise MetricsError(f"metrics: {exc}") from None


def user_metrics(
    ref: str,
    function: Callable[..., Any],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_score: np.ndarray | None,
    reported: Collection[str],
) -> dict[str, float]:
    """What ``function`` returns for these arrays, checked: names to floats, measured values only (None and NaN
    are left out). ``reported``: the metrics the evaluation already reports, which a user metric may not shadow."""
    try:
        returned = function(y_true, y_pred, y_score)
    except Exception as exc:  # whatever the team's code raises is reported as its own failure
        raise MetricsError(f"metrics: {ref} raised {one_line(exc)}") from None
    if not isinstance(returned, Mapping):
        raise MetricsError(f"metrics: {ref} returned a {type(returned).__name__}, not a dict of name -> number")
    out: dict[str, float] = {}
    for name, value in returned.items():
        if not isinstance(name, str) or not name:
            raise MetricsError(f"metrics: {ref} returned the key {name!r}; metric names are non-empty strings")
        if name in reported or name in RULES:
            raise MetricsError(
                f"metrics: {ref} returned {name!r}, a metric the evaluation reports or gates itself: rename yours"
            )
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise MetricsError(f"metrics: {ref} returned {name!r}: {value!r}, not a number")
        if math.isnan(float(value)):
            continue
        if math.isinf(float(value)):
            raise MetricsError(f"metrics: {ref} returned {name!r}: {value!r}, not a finite number")
        out[name] = float(value)
    return out
