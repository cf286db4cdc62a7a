"""A table dataset inferred from its file (issue #25, item 9): dtypes, nullability, categories, the id, the task,
the split and the data gates, each accepting the data it was inferred from."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from release_assets.datasets.infer_table import TableInferenceError, infer_table, read_table
from release_assets.datasets.table import validate_rows
from release_assets.evaluation.table_baseline import measure


def _csv(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _table(tmp_path: Path, rows: int = 40, extra: dict | None = None, name: str = "t.csv") -> Path:
    """A small classification table: an id, numbers, a category, a flag, a date, a code and a yes/no target."""
    records = []
    for i in range(rows):
        records.append(
            {
                "customer_id": f"C{i:04d}",
                "visits": str(i % 7),
                "spend": f"{(i * 13) % 50 + 0.5:.2f}",
                "delta": f"{(i % 5) - 2.5:.1f}",  # negative values: no min
                "plan": ["basic", "pro", "team"][i % 3],
                "active": ["true", "false"][i % 2],
                "signed_up": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}",
                "zip": f"0{1000 + i}",  # a code with a leading zero: text, not a number
                "churned": "yes" if (i * 7) % 5 < 2 else "no",
                **(extra(i) if callable(extra) else {}),
            }
        )
    frame = pd.DataFrame(records)
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_each_columns_dtype_nullability_and_category_is_inferred(tmp_path):
    path = _table(tmp_path)
    draft = infer_table(path, "churned")
    cols = draft.dataset.columns
    assert {c: s.dtype for c, s in cols.items()} == {
        "customer_id": "str",
        "visits": "int",
        "spend": "float",
        "delta": "float",
        "plan": "str",
        "active": "bool",
        "signed_up": "datetime",
        "zip": "str",
        "churned": "str",
    }
    assert cols["plan"].allowed == ["basic", "pro", "team"]
    assert cols["zip"].allowed is None  # 40 distinct codes in 40 rows: no category
    assert cols["churned"].allowed == ["no", "yes"]
    assert not any(s.nullable for s in cols.values())


def test_bounds_are_never_tighter_than_the_data(tmp_path):
    path = _table(tmp_path)
    draft = infer_table(path, "churned")
    cols = draft.dataset.columns
    assert cols["visits"].min == 0 and cols["spend"].min == 0 and cols["visits"].max is None
    assert cols["delta"].min is None  # it has negative values
    # The data it was inferred from passes the inferred schema, row by row, as a release reads it.
    frame = read_table(path)[list(cols)]
    _, _, failures = validate_rows(draft.dataset, frame)
    assert failures == {}
    assert draft.gates["invalid_rows"] == {"max": 0}


def test_missing_values_make_a_column_nullable_and_keep_its_dtype(tmp_path):
    path = _csv(
        tmp_path,
        "id,age,score,label\n1,34,0.5,a\n2,,0.7,b\n3,51,,a\n4,28,0.1,b\n5,40,0.9,a\n6,33,0.2,b\n7,30,0.4,a\n8,22,0.6,b\n",
    )
    cols = infer_table(path, "label").dataset.columns
    assert (cols["age"].dtype, cols["age"].nullable) == ("int", True)
    assert (cols["score"].dtype, cols["score"].nullable) == ("float", True)
    assert cols["label"].nullable is False


def test_an_id_like_unique_column_is_the_id_and_a_second_one_is_left_out(tmp_path):
    path = _table(tmp_path, extra=lambda i: {"order_id": f"O{i}", "region_id": str(i % 3)})
    draft = infer_table(path, "churned")
    assert draft.dataset.id == "customer_id"
    assert draft.dataset.columns["customer_id"].unique is True
    assert "order_id" in draft.left_out and "order_id" not in draft.dataset.columns
    assert "region_id" in draft.dataset.columns  # named like an id but repeats: a feature
    assert draft.dataset.columns["region_id"].unique is False
    assert "customer_id" not in draft.dataset.features


def test_a_table_without_an_id_column_has_none(tmp_path):
    path = _csv(tmp_path, "x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    draft = infer_table(path, "y")
    assert draft.dataset.id is None


@pytest.mark.parametrize(
    ("values", "task", "dtype"),
    [
        (["yes", "no"], "binary", "str"),
        (["0", "1"], "binary", "int"),
        (["true", "false"], "binary", "bool"),
        (["red", "green", "blue"], "multiclass", "str"),
        ([str(v) for v in range(1, 6)], "multiclass", "int"),
        ([f"{v * 1.37:.2f}" for v in range(60)], "regression", "float"),
        ([str(v * 11) for v in range(60)], "regression", "int"),
    ],
)
def test_the_task_is_detected_from_the_target(tmp_path, values, task, dtype):
    lines = "".join(f"{i},{i * 3 % 17},{values[i % len(values)]}\n" for i in range(120))
    path = _csv(tmp_path, "row_id,x,target\n" + lines)
    draft = infer_table(path, "target")
    assert draft.dataset.task == task
    assert draft.dataset.columns["target"].dtype == dtype
    if task == "regression":
        assert draft.dataset.strategy == "random" and "label_coverage" not in draft.gates
    else:
        assert draft.dataset.strategy == "stratified" and draft.gates["label_coverage"]["min"] >= 1


def test_a_datetime_column_makes_a_time_split(tmp_path):
    draft = infer_table(_table(tmp_path, rows=80), "churned")
    assert draft.dataset.split.strategy == "time" and draft.dataset.split.by == "signed_up"
    assert draft.dataset.split.test == 0.25
    assert "signed_up" not in draft.dataset.features
    assert set(draft.split_rows) == {"train", "test"}


def test_a_time_split_that_would_leave_a_class_out_falls_back_to_stratified(tmp_path):
    # Every "b" is older than every "a": the latest quarter, the test split by time, holds no "b".
    lines = "".join(f"{i},2025-01-{1 + i // 2:02d},{i % 5},{'b' if i < 10 else 'a'}\n" for i in range(40))
    path = _csv(tmp_path, "id,day,x,label\n" + lines)
    draft = infer_table(path, "label")
    assert draft.dataset.strategy == "stratified"
    assert any("time split by 'day'" in n for n in draft.notes)


def test_label_coverage_asks_at_most_what_every_split_has(tmp_path):
    draft = infer_table(_table(tmp_path, rows=80), "churned")
    fewest = min(n for side in draft.split_labels.values() for n in side.values())
    assert draft.gates["label_coverage"]["min"] == min(10, fewest)
    assert draft.gates["drift"] == {"max": 0, "on_inconclusive": "warn"}
    assert draft.gates["duplicates"] == {"max": 0} and draft.gates["leakage"] == {"max": 0}


def test_rows_missing_the_target_are_invalid_rows_the_gate_tolerates(tmp_path):
    lines = "".join(f"{i},{i % 4},{'' if i in (3, 9) else i % 2}\n" for i in range(30))
    draft = infer_table(_csv(tmp_path, "id,x,y\n" + lines), "y")
    assert draft.gates["invalid_rows"] == {"max": 2}
    assert draft.dataset.columns["y"].nullable is False
    assert any("2 rows have no 'y'" in n for n in draft.notes)


def test_parquet_and_jsonl_give_the_csvs_schema(tmp_path):
    csv_path = _table(tmp_path)
    frame = pd.read_csv(csv_path, dtype=str)
    typed = frame.assign(
        visits=frame.visits.astype(int),
        spend=frame.spend.astype(float),
        delta=frame.delta.astype(float),
        active=frame.active == "true",
        signed_up=pd.to_datetime(frame.signed_up),
    )
    typed.to_parquet(tmp_path / "t.parquet")
    with (tmp_path / "t.jsonl").open("w") as fh:
        for record in typed.assign(signed_up=frame.signed_up).to_dict("records"):
            fh.write(json.dumps(record) + "\n")
    expected = {c: s.dtype for c, s in infer_table(csv_path, "churned").dataset.columns.items()}
    for name in ("t.parquet", "t.jsonl"):
        draft = infer_table(tmp_path / name, "churned")
        assert {c: s.dtype for c, s in draft.dataset.columns.items()} == expected, name


@pytest.mark.parametrize(
    ("text", "target", "message"),
    [
        ("a,b\n1,2\n3,4\n", "c", r"t\.csv: no column 'c' to predict \(the file has: a, b\)"),
        ("a,b\n1,x\n2,x\n3,x\n", "b", r"t\.csv: target 'b' has 1 distinct value \('x'\): there is nothing to learn"),
        ("a,b\n", "b", r"t\.csv: no rows"),
    ],
)
def test_tables_that_cannot_be_scaffolded_are_one_line_naming_the_file_and_column(tmp_path, text, target, message):
    with pytest.raises(TableInferenceError, match=message) as caught:
        infer_table(_csv(tmp_path, text), target)
    assert "\n" not in str(caught.value)


def test_a_task_the_target_cannot_have_is_refused(tmp_path):
    path = _table(tmp_path)
    with pytest.raises(TableInferenceError, match="target 'plan' is str; a regression target must be a number"):
        infer_table(path, "plan", task="regression")
    with pytest.raises(TableInferenceError, match="target 'plan' has 3 distinct values; binary needs 2"):
        infer_table(path, "plan", task="binary")


def test_the_starter_model_learns_from_missing_values_bools_and_dates(tmp_path):
    # Missing ints, bools and text in training: the starter pipeline imputes or one-hots them, drops the date.
    lines = "".join(
        f"{i},{'' if i % 9 == 0 else i % 11},{'' if i % 7 == 0 else ['true', 'false'][i % 2]},"
        f"{'' if i % 8 == 0 else ['a', 'b', 'c'][i % 3]},2025-01-{1 + i % 28:02d},{float(i % 11) * 2 + (i % 3):.1f}\n"
        for i in range(120)
    )
    path = _csv(tmp_path, "id,n,flag,cat,day,value\n" + lines)
    draft = infer_table(path, "value")
    assert draft.dataset.task == "regression"
    assert [c for c, s in draft.dataset.columns.items() if s.nullable] == ["n", "flag", "cat"]
    baseline = measure(draft.dataset, path)
    assert baseline.metrics["r2"] > 0.5
    assert baseline.gates["r2"].bound["min"] <= baseline.metrics["r2"]
    assert baseline.gates["mae"].bound["max"] >= baseline.metrics["mae"]


@pytest.mark.parametrize(
    ("column", "is_id"),
    [("id", True), ("loan_id", True), ("customerId", True), ("OrderID", True), ("paid", False), ("valid", False)],
)
def test_id_like_names(tmp_path, column, is_id):
    path = _csv(tmp_path, f"{column},x,y\n" + "".join(f"{i + 100},{i % 3},{i % 2}\n" for i in range(20)))
    assert infer_table(path, "y").dataset.id == (column if is_id else None)
