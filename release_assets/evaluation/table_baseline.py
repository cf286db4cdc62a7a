"""What the starter model scores on a table, and model gates a little below it: the model half of scaffolding a
release from a table (the data half is ``datasets/infer_table.py``). No Dagster here.

The starter model (``models/starter.py``) is trained and evaluated by the release's own code on the release's own
split, in a temporary folder: the table read and validated (``datasets/table.py``), split, the model trained by
the ``python_model`` runtime, stored, loaded back and evaluated (``model_eval.evaluate``). The scores are the ones
the first release of the scaffolded manifest will see on the same data, so its gates pass as written.

Each bound sits below the score (above it, for errors) by a margin that grows with the test split's noise: two
standard errors of the score on that many rows, at least 0.02. A quality gate never asks less than a model that
learnt nothing: accuracy above always answering the commonest class, ROC AUC above 0.5, R² above 0 (predicting
the mean). When the starter model itself does not clear that floor, the bound stays at the floor and a warning
says the release will be held until a better ``train:`` function is named.
"""

from __future__ import annotations

import math
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from release_assets.datasets import table
from release_assets.datasets.build import ROWS_FILE, DataFileError, read_jsonl
from release_assets.evaluation.model_eval import evaluate
from release_assets.manifest import PythonModel, TableDataset
from release_assets.manifest.kinds import Task
from release_assets.models.python_model import RUNTIME, TrainingError
from release_assets.models.table_predictor import ModelFileError, TablePredictor

STARTER = "release_assets.models.starter:fit"
MIN_MARGIN = 0.02
LATENCY_FLOOR_MS = 50.0  # p95_ms bound: a single-row prediction of a small pipeline takes a few ms


class BaselineError(DataFileError):
    """The starter model could not be trained or evaluated on the table; the message names the file."""


@dataclass
class Gate:
    bound: dict[str, Any]  # the threshold as the manifest writes it ({min: 0.7}, {max: 50}, ...)
    comment: str = ""  # what it was set from, for the person reviewing it


@dataclass
class Baseline:
    """The starter model's figures on the table's test split, the gates set from them, and warnings."""

    metrics: dict[str, float]
    test_rows: int
    majority: str | None  # classification: the commonest class in train, and its share of the test rows
    majority_rate: float | None
    gates: dict[str, Gate] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def starter_params(task: Task) -> dict[str, Any]:
    return {"alpha": 1.0} if task == "regression" else {"C": 1.0}


def measure(dataset: TableDataset, file: Path, train: str = STARTER, params: dict[str, Any] | None = None) -> Baseline:
    """Train ``train`` (the starter model) on ``dataset``'s split of ``file`` and evaluate it on the test split."""
    member = dataset.model_copy(update={"path": file.name})  # read from the file itself, wherever it is
    model = PythonModel(kind="python_model", data="data", train=train, params=params or starter_params(dataset.task))
    with tempfile.TemporaryDirectory(prefix="release_assets_baseline_") as tmp:
        raw, split, model_dir = (Path(tmp) / d for d in ("raw", "split", "model"))
        for folder in (raw, split, model_dir):
            folder.mkdir()
        table.build_raw(member, file.parent, raw)
        table.build_split(member, raw, split)
        try:
            RUNTIME.build(model, split, model_dir, file.parent)
            summary = evaluate(TablePredictor(model_dir), read_jsonl(split / "test.jsonl"))
        except (TrainingError, ModelFileError) as exc:
            raise BaselineError(f"{file}: the starter model could not learn from it: {exc}") from None
        train_rows = read_jsonl(split / "train.jsonl")
        test_rows = read_jsonl(split / "test.jsonl")
        assert read_jsonl(raw / ROWS_FILE), "build_raw refuses a table with no valid row"
    metrics = {k: float(v) for k, v in summary["metrics"].items() if isinstance(v, int | float)}
    majority = majority_rate = None
    if dataset.task != "regression":
        majority = Counter(str(r["label"]) for r in train_rows).most_common(1)[0][0]
        majority_rate = sum(str(r["label"]) == majority for r in test_rows) / len(test_rows)
    baseline = Baseline(metrics, len(test_rows), majority, majority_rate)
    baseline.gates, baseline.warnings = model_gates(dataset.task, baseline)
    return baseline


def _floor2(x: float) -> float:
    return math.floor(x * 100 + 1e-9) / 100


def _ceil2(x: float) -> float:
    return math.ceil(x * 100 - 1e-9) / 100


def _two_significant_up(x: float) -> float:
    """``x`` rounded up to two significant digits (an error bound a person reads: 183.4 -> 190)."""
    if x <= 0:
        return 0.0
    step = 10 ** (math.floor(math.log10(x)) - 1)
    return round(math.ceil(x / step - 1e-9) * step, 10)


def margin(score: float, n: int) -> float:
    """Two standard errors of a rate ``score`` measured on ``n`` rows, at least ``MIN_MARGIN``."""
    p = min(max(score, 0.0), 1.0)
    return max(MIN_MARGIN, 2 * math.sqrt(p * (1 - p) / max(n, 1)))


def _at_least(gate: str, score: float, n: int, floor: float, what_floor: str) -> tuple[Gate, str | None]:
    bound = min(1.0, max(_floor2(score - margin(score, n)), floor))
    comment = f"starter model: {score:.3f}" + (f"; {what_floor}" if what_floor else "")
    warning = None
    if score < bound:
        warning = (
            f"the starter model's {gate} ({score:.3f}) is below {bound:g} ({what_floor}): the release will be held "
            "until `train:` names a model that learns more from this data"
        )
    return Gate({"min": bound}, comment), warning


def model_gates(task: Task, baseline: Baseline) -> tuple[dict[str, Gate], list[str]]:
    """The model gates of a ``task``, each set from the starter model's score (module docstring)."""
    m, n = baseline.metrics, baseline.test_rows
    gates: dict[str, Gate] = {}
    warnings: list[str] = []

    def add(name: str, made: tuple[Gate, str | None]) -> None:
        gates[name] = made[0]
        if made[1]:
            warnings.append(made[1])

    if task == "regression":
        r2 = m.get("r2")
        if r2 is not None:
            r2_margin = max(MIN_MARGIN, 2 * (1 - min(r2, 1.0)) / math.sqrt(max(n, 1)))
            bound = max(_floor2(r2 - r2_margin), 0.0)
            gates["r2"] = Gate({"min": bound}, f"starter model: {r2:.3f}; 0 is predicting the mean")
            if r2 < bound:
                warnings.append(
                    f"the starter model's r2 ({r2:.3f}) is not above 0 (predicting the mean): the release will be "
                    "held until `train:` names a model that learns more from this data"
                )
        if "mae" in m:
            bound = _two_significant_up(m["mae"] * (1 + max(0.1, 2 / math.sqrt(max(n, 1)))))
            gates["mae"] = Gate({"max": bound}, f"starter model: {m['mae']:.4g}, in the target's unit")
    else:
        assert baseline.majority_rate is not None
        floor = min(1.0, _ceil2(baseline.majority_rate + 0.01))
        majority = f"always answering {baseline.majority!r}: {baseline.majority_rate:.3f}"
        add("accuracy", _at_least("accuracy", m["accuracy"], n, floor, majority))
        if task == "binary":
            if "roc_auc" in m:
                add("roc_auc", _at_least("roc_auc", m["roc_auc"], _minority_rows(baseline), 0.51, "0.5 is chance"))
            if "calibration_error" in m:
                ce = m["calibration_error"]
                bound = min(1.0, _ceil2(ce + margin(m["accuracy"], n)))
                gates["calibration_error"] = Gate({"max": bound}, f"starter model: {ce:.3f}")
        elif "macro_f1" in m:
            f1 = m["macro_f1"]
            bound = _floor2(f1 - margin(f1, n))
            if bound > 0:
                gates["macro_f1"] = Gate({"min": bound}, f"starter model: {f1:.3f}")
        gates["regression"] = Gate(
            {"min": -0.05, "on_inconclusive": "warn"},
            "accuracy may fall 0.05 below the champion's (a warning until one is promoted)",
        )
    p95 = m.get("p95_ms")
    bound = LATENCY_FLOOR_MS
    if p95 is not None and math.isfinite(p95):
        bound = max(LATENCY_FLOOR_MS, math.ceil(4 * p95 / 10) * 10)
    gates["p95_ms"] = Gate(
        {"max": bound}, f"starter model: {p95:.1f} ms a row" if p95 is not None and math.isfinite(p95) else ""
    )
    return gates, warnings


def _minority_rows(baseline: Baseline) -> int:
    """Rows of the rarer class in the test split of a binary task: what ROC AUC's noise depends on."""
    assert baseline.majority_rate is not None
    return max(1, round(baseline.test_rows * min(baseline.majority_rate, 1 - baseline.majority_rate)))
