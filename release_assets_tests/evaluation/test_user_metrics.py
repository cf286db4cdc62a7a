"""A team's own metrics (#25): the function a python_model or imported_model names in `metrics:` is called at
evaluation with (y_true, y_pred, y_score); what it returns joins the report's metrics, its source the report's code
version; a function that does not import, raises or returns something else is one line naming `metrics`."""

from __future__ import annotations

import json
import sys
import textwrap
from typing import ClassVar

import numpy as np
import pytest

from release_assets.core import hashing
from release_assets.evaluation.assets import REPORT_MODULES, _report_code
from release_assets.evaluation.model_eval import build_model_report, evaluate
from release_assets.evaluation.user_metrics import MetricsError
from release_assets.manifest import ManifestError, parse_manifest
from release_assets.manifest.paths import check_paths
from release_assets.models.trainers import MODEL_KINDS

PACKAGE = "team_eval_metrics"
SOURCE = '''
"""A team's metrics: plain functions of (y_true, y_pred, y_score)."""

import numpy as np

from team_eval_metrics.thresholds import WITHIN

CALLS = []


def rent_metrics(y_true, y_pred, y_score):
    CALLS.append((y_true, y_pred, y_score))
    error = np.abs(y_true - y_pred)
    return {"within_tolerance": float(np.mean(error <= WITHIN)), "max_error": float(error.max()), "later": None}


def churn_metrics(y_true, y_pred, y_score):
    CALLS.append((y_true, y_pred, y_score))
    caught = (y_true == "yes") & (y_pred == "yes")
    return {"yes_caught": int(caught.sum()), "mean_score": float(np.mean(y_score)), "undefined": float("nan")}


def broken(y_true, y_pred, y_score):
    raise ValueError("the price index is\\nunreachable")


def a_list(y_true, y_pred, y_score):
    return [1.0]


def a_word(y_true, y_pred, y_score):
    return {"grade": "good"}


def shadows(y_true, y_pred, y_score):
    return {"mae": 0.0}
'''


@pytest.fixture
def team(tmp_path, monkeypatch):
    """The team's package, importable as an installed one would be; forgotten again after the test."""
    package = tmp_path / "site" / PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "metrics.py").write_text(textwrap.dedent(SOURCE))
    (package / "thresholds.py").write_text("WITHIN = 0.25\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    yield package
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]
    hashing.module_file.cache_clear()
    hashing.module_source.cache_clear()
    hashing.imported_modules.cache_clear()
    hashing._closure_of.cache_clear()


class Prices:
    task = "regression"
    labels: ClassVar[list[str]] = []

    def predict_values(self, rows):
        return np.asarray([r["features"]["guess"] for r in rows], dtype=float)


class Churn:
    """A binary or multiclass classifier answering each row's stored probabilities."""

    def __init__(self, labels, task):
        self.labels, self.task = labels, task

    def predict_proba(self, rows):
        return np.asarray([r["features"]["p"] for r in rows], dtype=float)


REGRESSION_ROWS = [
    {"id": f"h{i}", "label": target, "group": f"g{i}", "features": {"guess": guess}}
    for i, (target, guess) in enumerate([(1.0, 1.1), (2.0, 2.0), (3.0, 3.5), (4.0, 3.8)])
]
# errors 0.1, 0, 0.5, 0.2: three of four within 0.25, the largest 0.5
BINARY_ROWS = [
    {"id": "c1", "label": "yes", "group": "1", "features": {"p": [0.2, 0.8]}},
    {"id": "c2", "label": "yes", "group": "2", "features": {"p": [0.6, 0.4]}},
    {"id": "c3", "label": "no", "group": "3", "features": {"p": [0.9, 0.1]}},
]


def test_a_regression_models_own_metrics_join_its_summary(team):
    summary = evaluate(Prices(), REGRESSION_ROWS, f"{PACKAGE}.metrics:rent_metrics")
    m = summary["metrics"]
    assert m["within_tolerance"] == pytest.approx(0.75) and m["max_error"] == pytest.approx(0.5)
    assert "later" not in m  # None: not measured, left out
    assert m["mae"] == pytest.approx(0.2)  # the built-in metrics are still there
    assert summary["user_metrics"] == ["max_error", "within_tolerance"]
    [(y_true, y_pred, y_score)] = sys.modules[f"{PACKAGE}.metrics"].CALLS
    assert isinstance(y_true, np.ndarray) and y_true.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert y_pred.tolist() == [1.1, 2.0, 3.5, 3.8] and y_score is None


def test_a_binary_classifier_gets_the_positive_class_probability(team):
    summary = evaluate(Churn(["no", "yes"], "binary"), BINARY_ROWS, f"{PACKAGE}.metrics:churn_metrics")
    assert summary["metrics"]["yes_caught"] == 1.0
    assert summary["metrics"]["mean_score"] == pytest.approx((0.8 + 0.4 + 0.1) / 3)
    assert "undefined" not in summary["metrics"]  # NaN: not measured
    [(y_true, y_pred, y_score)] = sys.modules[f"{PACKAGE}.metrics"].CALLS
    assert y_true.tolist() == ["yes", "yes", "no"] and y_pred.tolist() == ["yes", "no", "no"]
    assert y_score.shape == (3,) and y_score.tolist() == pytest.approx([0.8, 0.4, 0.1])


def test_a_multiclass_classifier_gets_the_probability_matrix_in_label_order(team):
    evaluate(Churn(["maybe", "no", "yes"], "multiclass"), _three_class_rows(), f"{PACKAGE}.metrics:churn_metrics")
    [(_, _, y_score)] = sys.modules[f"{PACKAGE}.metrics"].CALLS
    assert y_score.shape == (3, 3) and y_score[0].tolist() == pytest.approx([0.1, 0.1, 0.8])


def _three_class_rows():
    probabilities = [[0.1, 0.1, 0.8], [0.5, 0.3, 0.2], [0.2, 0.7, 0.1]]
    return [{**r, "features": {"p": p}} for r, p in zip(BINARY_ROWS, probabilities, strict=True)]


def test_an_empty_test_split_measures_none(team):
    summary = evaluate(Prices(), [], f"{PACKAGE}.metrics:rent_metrics")
    assert summary["user_metrics"] == [] and "within_tolerance" not in summary["metrics"]


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("broken", r"^metrics: team_eval_metrics\.metrics:broken raised ValueError: the price index is unreachable$"),
        (
            "missing",
            r"^metrics: 'team_eval_metrics\.metrics:missing': module \S+ has no function 'missing'$",
        ),
        ("a_list", r"^metrics: team_eval_metrics\.metrics:a_list returned a list, not a dict of name -> number$"),
        ("a_word", r"^metrics: team_eval_metrics\.metrics:a_word returned 'grade': 'good', not a number$"),
        ("shadows", r"^metrics: team_eval_metrics\.metrics:shadows returned 'mae', a metric the evaluation reports"),
    ],
)
def test_a_function_that_fails_is_one_line_naming_metrics(team, ref, expected):
    with pytest.raises(MetricsError, match=expected) as info:
        evaluate(Prices(), REGRESSION_ROWS, f"{PACKAGE}.metrics:{ref}")
    assert "\n" not in str(info.value)


def test_a_module_that_does_not_import_is_one_line_naming_metrics(team):
    (team / "metrics.py").write_text("import numpy as np\nraise RuntimeError('no\\nconfig')\n")
    with pytest.raises(MetricsError, match=r"^metrics: 'team_eval_metrics\.metrics:f' does not import: Runtime"):
        evaluate(Prices(), REGRESSION_ROWS, f"{PACKAGE}.metrics:f")


def test_the_report_lists_the_teams_metrics(team, tmp_path, monkeypatch):
    class Runtime:
        def load(self, model_dir, runtime=None):
            return Prices()

    monkeypatch.setitem(MODEL_KINDS, "fake_prices", Runtime())
    split, out = tmp_path / "split", tmp_path / "out"
    split.mkdir()
    out.mkdir()
    (split / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in REGRESSION_ROWS))
    summary = build_model_report("fake_prices", tmp_path, split, out, "rents/rent_model", None, team_ref())
    assert summary["metrics"]["within_tolerance"] == pytest.approx(0.75)
    assert "| within_tolerance | 0.75 |" in (out / "report.md").read_text()
    assert json.loads((out / "report.json").read_text())["metrics"]["max_error"] == pytest.approx(0.5)


def team_ref() -> str:
    return f"{PACKAGE}.metrics:rent_metrics"


MANIFEST = {
    "name": "rents",
    "members": {
        "flats": {
            "kind": "table",
            "path": "flats.csv",
            "target": "rent",
            "task": "regression",
            "columns": {"area_m2": {"dtype": "float"}, "rent": {"dtype": "float"}},
            "split": {"test": 0.25},
        },
        "rent_model": {"kind": "imported_model", "data": "flats", "path": "rent.onnx", "metrics": team_ref()},
    },
    "gates": {"rent_model": {"within_tolerance": {"min": 0.7}}},
}


def test_the_teams_module_is_found_at_load_and_its_source_is_the_reports_code_version(team, tmp_path):
    (tmp_path / "flats.csv").write_text("area_m2,rent\n")
    (tmp_path / "rent.onnx").write_text("")
    manifest = check_paths(parse_manifest(MANIFEST, "releases/rents.yaml"), tmp_path)
    member = manifest.members["rent_model"]

    code = _report_code(member)
    assert {f"{PACKAGE}.metrics", f"{PACKAGE}.thresholds", PACKAGE} <= set(code.modules)
    before = code.version()
    (team / "thresholds.py").write_text("WITHIN = 0.5\n")  # a module the function's module imports
    hashing.module_source.cache_clear()
    assert _report_code(member).version() != before
    # Another function of the same module is another evaluation.
    other = member.model_copy(update={"metrics": f"{PACKAGE}.metrics:churn_metrics"})
    assert _report_code(other).version() != _report_code(member).version()
    # A member naming no function keeps the version reports had before `metrics:` existed.
    plain = member.model_copy(update={"metrics": None})
    assert _report_code(plain).version() == hashing.CodeInputs(REPORT_MODULES, config=[]).version()
    assert "metrics" not in plain.model_dump(mode="json")

    missing = json.loads(json.dumps(MANIFEST))
    missing["members"]["rent_model"]["metrics"] = "team_eval_metrix.metrics:rent_metrics"
    with pytest.raises(
        ManifestError,
        match=r"members\.rent_model\.metrics: 'team_eval_metrix\.metrics:rent_metrics' does not import: no module",
    ):
        check_paths(parse_manifest(missing, "releases/rents.yaml"), tmp_path)


def test_a_metrics_reference_must_name_a_function():
    bad = json.loads(json.dumps(MANIFEST))
    bad["members"]["rent_model"]["metrics"] = "team_eval_metrics.metrics"
    with pytest.raises(ManifestError, match=r"members\.rent_model\.metrics.*is not `package\.module:function`"):
        parse_manifest(bad, "releases/rents.yaml")
