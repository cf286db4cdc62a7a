"""The `table` dataset kind on tiny files: each schema rule fails the rows that break it (by line, id and column,
never trained on), file-level mistakes are one error naming the file, and each split strategy keeps its promise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from release_assets.datasets.build import DataFileError, read_jsonl
from release_assets.datasets.table import TABLE_FILE, build_raw, build_split, split_table
from release_assets.manifest import ManifestError, parse_member

COLUMNS = {
    "id": {"dtype": "str", "unique": True},
    "x": {"dtype": "float", "min": 0},
    "n": {"dtype": "int", "max": 10},
    "colour": {"dtype": "str", "allowed": ["red", "blue"]},
    "day": {"dtype": "datetime"},
    "y": {"dtype": "str"},
}


def _member(**changes):
    return parse_member(
        "t",
        {"kind": "table", "path": "t.csv", "id": "id", "target": "y", "task": "binary", "columns": COLUMNS}
        | {"split": {"test": 0.25}}
        | changes,
    )


def _csv(tmp_path: Path, lines: list[str]) -> Path:
    (tmp_path / "t.csv").write_text("id,x,n,colour,day,y\n" + "\n".join(lines) + "\n")
    out = tmp_path / "raw"
    out.mkdir()
    return out


def test_each_schema_rule_fails_the_row_that_breaks_it_naming_line_id_and_column(tmp_path):
    good = [
        f"r{i},{i}.5,{i % 10},{'red' if i % 2 else 'blue'},2024-01-{i + 1:02d},{'a' if i % 2 else 'b'}"
        for i in range(8)
    ]
    bad = [
        "b1,abc,1,red,2024-02-01,a",  # x is not a number
        "b2,-1,1,red,2024-02-02,a",  # x below min
        "b3,1,2.5,red,2024-02-03,a",  # n is not whole
        "b4,1,11,red,2024-02-04,a",  # n above max
        "b5,1,1,green,2024-02-05,a",  # colour not allowed
        "b6,1,,red,2024-02-06,a",  # n missing, not nullable
        "b7,1,1,red,someday,a",  # day not a date
        "r0,1,1,red,2024-02-08,a",  # id repeated (unique)
    ]
    out = _csv(tmp_path, good + bad)
    summary = build_raw(_member(), tmp_path, out)
    failures = {(e["id"], e["field"]): e for e in summary["examples"]}
    assert summary["metrics"] == {"rows": 7, "invalid_rows": 9}  # r0's first row and its copy both fail `unique`
    expected = {
        ("b1", "x"): "not a number",
        ("b2", "x"): ">= 0",
        ("b3", "n"): "whole number",
        ("b4", "n"): "<= 10",
        ("b5", "colour"): "one of ['red', 'blue']",
        ("b6", "n"): "missing",
        ("b7", "day"): "not a date",
        ("r0", "id"): "duplicates",
    }
    for key, says in expected.items():
        assert key in failures and says in failures[key]["error"], (key, failures.get(key))
    assert failures[("b1", "x")]["line"] == 10  # header, 8 good rows, then b1: what a person sees in an editor
    kept = {r["id"] for r in read_jsonl(out / "rows.jsonl")}
    assert not kept & {"b1", "b2", "b3", "b4", "b5", "b6", "b7", "r0"}
    table = json.loads((out / TABLE_FILE).read_text())
    assert table["feature_columns"] == ["x", "n", "colour", "day"] and table["labels"] == ["a", "b"]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("id,x,n,colour,y\nr1,1,1,red,a\n", "declared column 'day' missing"),
        ("id,x,n,colour,day,y\n", "no rows"),
        (None, "table file not found"),
    ],
)
def test_a_file_level_mistake_is_one_error_naming_the_file(tmp_path, content, says):
    if content is not None:
        (tmp_path / "t.csv").write_text(content)
    out = tmp_path / "raw"
    out.mkdir()
    with pytest.raises(DataFileError, match=says) as caught:
        build_raw(_member(), tmp_path, out)
    assert "t.csv" in str(caught.value) and "\n" not in str(caught.value)
    assert not (out / "rows.jsonl").exists()


def _rows(n: int, **extra):
    return [
        {"id": f"r{i}", "label": "a" if i % 3 else "b", "group": f"g{i // 4}", "features": {"x": i}, **extra}
        | ({"time": f"2024-01-{i + 1:02d}T00:00:00"} if "time" not in extra else {})
        for i in range(n)
    ]


def test_group_split_keeps_each_group_on_one_side_and_time_split_tests_the_future():
    member = _member(split={"strategy": "group", "by": "colour", "test": 0.3})
    rows = _rows(24)
    sides = split_table(member, rows)
    side_of = {r["group"]: side for side, rs in sides.items() for r in rs}
    assert all(side_of[r["group"]] == side for side, rs in sides.items() for r in rs)
    assert sides["test"] and sides["train"]

    timed = _member(split={"strategy": "time", "by": "day", "test": 0.25})
    sides = split_table(timed, rows)
    assert max(r["time"] for r in sides["train"]) < min(r["time"] for r in sides["test"])
    assert len(sides["test"]) == 6


def test_stratified_split_keeps_every_class_in_test_and_is_the_same_every_time(tmp_path):
    member = _member()
    rows = [{**r, "group": r["id"]} for r in _rows(40)]
    first, again = split_table(member, rows), split_table(member, rows)
    assert first == again
    assert {r["label"] for r in first["test"]} == {"a", "b"}


def test_build_split_refuses_a_split_that_leaves_no_test_rows(tmp_path):
    member = _member(split={"strategy": "time", "by": "day", "test": 0.25})
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "rows.jsonl").write_text(json.dumps({"id": "r1", "label": "a", "group": "g", "features": {}, "time": None}))
    (raw / TABLE_FILE).write_text("{}")
    out = tmp_path / "split"
    out.mkdir()
    with pytest.raises(DataFileError, match="leaves no test rows"):
        build_split(member, raw, out)


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"target": "z"}, r"members\.t: target: 'z' is not a declared column"),
        ({"task": "regression"}, r"a regression target must be int or float"),
        ({"split": {"strategy": "time", "test": 0.2}}, r"members\.t\.split: a time split needs `by:`"),
        ({"split": {"strategy": "stratified", "test": 0.2}, "task": "regression", "target": "x"}, "stratified needs"),
        ({"asset": "features/t"}, r"`path:` \(a file\) or its `asset:`"),
        ({"slices": ["nope"]}, r"slices\[0\]: 'nope' is not a declared column"),
        ({"columns": {**COLUMNS, "x": {"dtype": "str", "min": 0}}}, r"columns\.x: `min`/`max` need a numeric dtype"),
    ],
)
def test_a_table_entry_that_cannot_work_is_refused_when_the_manifest_loads(changes, says):
    with pytest.raises(ManifestError, match=says):
        _member(**changes)


def test_a_table_on_s3_is_read_and_its_etag_is_the_builds_input(tmp_path, monkeypatch):
    from bench.support.s3_moto import moto_s3
    from release_assets.datasets.table import RUNTIME

    with moto_s3("tables") as (endpoint, client):
        for name, value in (
            ("RELEASE_ASSETS_S3_ENDPOINT_URL", endpoint),
            ("RELEASE_ASSETS_S3_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "ci"),
            ("AWS_SECRET_ACCESS_KEY", "ci"),
        ):
            monkeypatch.setenv(name, value)
        lines = [f"r{i},{i}.5,{i % 10},red,2024-01-{i + 1:02d},{'a' if i % 2 else 'b'}" for i in range(8)]
        client.put_object(Bucket="tables", Key="t.csv", Body="id,x,n,colour,day,y\n" + "\n".join(lines) + "\n")
        member = _member(path="s3://tables/t.csv")
        assert RUNTIME.source_files(member, tmp_path) == []
        before = RUNTIME.source_identity(member, tmp_path)
        out = tmp_path / "raw"
        out.mkdir()
        summary = build_raw(member, tmp_path, out)
        assert summary["metrics"] == {"rows": 8, "invalid_rows": 0} and summary["source"] == "s3://tables/t.csv"

        client.put_object(Bucket="tables", Key="t.csv", Body="id,x,n,colour,day,y\n" + "\n".join(lines[:4]) + "\n")
        assert RUNTIME.source_identity(member, tmp_path)["etag"] != before["etag"]  # changed object: read again

        missing = _member(path="s3://tables/nope.csv")
        with pytest.raises(DataFileError, match=r"^s3://tables/nope\.csv: cannot be read from S3 \(404") as caught:
            RUNTIME.source_identity(missing, tmp_path)
        assert "\n" not in str(caught.value)


def test_declared_features_are_what_a_model_reads_and_the_rest_is_still_checked(tmp_path):
    lines = [f"r{i},{i}.5,{i % 10},red,2024-01-{i + 1:02d},{'a' if i % 2 else 'b'}" for i in range(8)]
    out = _csv(tmp_path, [*lines, "r9,1,1,green,2024-01-20,a"])
    member = _member(
        features=["x", "colour"], positive="a", columns={**COLUMNS, "y": {"dtype": "str", "allowed": ["a", "b"]}}
    )
    summary = build_raw(member, tmp_path, out)
    assert summary["metrics"]["invalid_rows"] == 1  # `colour` is a feature; `n` and `day` are checked all the same
    table = json.loads((out / TABLE_FILE).read_text())
    assert table["feature_columns"] == ["x", "colour"] and table["positive"] == "a" and table["labels"] == ["a", "b"]
    assert set(read_jsonl(out / "rows.jsonl")[0]["features"]) == {"x", "colour"}


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"features": ["x", "y"]}, r"features\[1\]: 'y' is the target"),
        ({"features": ["nope"]}, r"features\[0\]: 'nope' is not a declared column"),
        ({"positive": "c", "columns": {**COLUMNS, "y": {"dtype": "str", "allowed": ["a", "b"]}}}, "not among"),
        ({"positive": "a", "task": "multiclass"}, "only a binary task has a positive class"),
    ],
)
def test_features_and_the_positive_class_are_checked_when_the_manifest_loads(changes, says):
    with pytest.raises(ManifestError, match=says):
        _member(**changes)


def test_an_s3_path_without_a_key_is_refused_naming_it():
    from release_assets.datasets.table import s3_identity

    with pytest.raises(DataFileError, match=r"^s3://bucket-only: not an s3://bucket/key URI$"):
        s3_identity("s3://bucket-only")
