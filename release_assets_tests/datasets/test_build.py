import json

import pytest

from release_assets.datasets.build import DataFileError, build_raw, build_split, load_jsonl, read_jsonl
from release_assets.manifest import JsonlDataset, SklearnDataset

GOOD = {
    "id": "m1",
    "text": "Refund order 12345 please",
    "intent": "refund",
    "secondary_intent": None,
    "paraphrase_group": "refund-t1",
    "entities": [{"type": "order_id", "start": 13, "end": 18, "value": "12345"}],
    "channel": "chat",
    "register": "informal",
    "length": "short",
}


def _write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")


def test_valid_messages_pass(tmp_path):
    _write(tmp_path / "m.jsonl", [GOOD])
    loaded = load_jsonl(tmp_path / "m.jsonl", "support_message")
    assert not loaded.failures
    assert loaded.rows[0]["register"] == "informal"


def test_failing_rows_are_listed_with_line_and_field(tmp_path):
    bad_intent = {**GOOD, "id": "m2", "intent": "teleport"}
    bad_span = {
        **GOOD,
        "id": "m3",
        "entities": [{"type": "order_id", "start": 0, "end": 5, "value": "12345"}],
    }
    _write(tmp_path / "m.jsonl", [GOOD, bad_intent, "{not json", bad_span])
    loaded = load_jsonl(tmp_path / "m.jsonl", "support_message")
    assert len(loaded.rows) == 1
    got = {(f.line, f.field) for f in loaded.failures}
    assert (2, "intent") in got
    assert (3, "<json>") in got
    assert any(f.line == 4 and "Refun" in f.error for f in loaded.failures)


def test_build_raw_reports_invalid_rows_metric(tmp_path):
    _write(tmp_path / "m.jsonl", [GOOD, {**GOOD, "id": "x", "channel": "fax"}])
    member = JsonlDataset(kind="jsonl_dataset", path="m.jsonl", schema="support_message", split={"test": 0.2})
    out = tmp_path / "out"
    out.mkdir()
    summary = build_raw(member, tmp_path, out)
    assert summary["metrics"] == {"rows": 1, "invalid_rows": 1}
    assert summary["examples"][0]["field"] == "channel"
    assert read_jsonl(out / "rows.jsonl")[0]["group"] == "refund-t1"


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_an_empty_source_is_an_error_naming_the_file(tmp_path, content):
    (tmp_path / "m.jsonl").write_text(content)
    with pytest.raises(DataFileError, match=r"m\.jsonl: no rows \(the file is empty"):
        load_jsonl(tmp_path / "m.jsonl", "support_message")


def test_iris_split_is_stratified_and_leak_free(tmp_path):
    member = SklearnDataset(kind="sklearn_dataset", name="iris", split={"test": 0.3, "seed": 7})
    raw, split = tmp_path / "raw", tmp_path / "split"
    raw.mkdir()
    split.mkdir()
    assert build_raw(member, tmp_path, raw)["metrics"]["invalid_rows"] == 0
    summary = build_split(member, raw, split)
    assert summary["rows"] == {"train": 105, "test": 45}
    train = {json.dumps(r["features"]) for r in read_jsonl(split / "train.jsonl")}
    test = {json.dumps(r["features"]) for r in read_jsonl(split / "test.jsonl")}
    assert not train & test  # iris has duplicate rows; they must stay on one side


def test_invalid_utf8_is_a_listed_row_failure_with_line_and_column(tmp_path):
    good = json.dumps(GOOD).encode()
    bad = json.dumps({**GOOD, "id": "m2", "text": "Refund caf\u00e9 XX"}, ensure_ascii=False).encode()
    bad = bad.replace(b"XX", b"\xff")
    (tmp_path / "m.jsonl").write_bytes(b"\n".join([good, bad, good.replace(b'"m1"', b'"m3"')]) + b"\n")
    loaded = load_jsonl(tmp_path / "m.jsonl", "support_message")
    assert [r["id"] for r in loaded.rows] == ["m1", "m3"]  # one bad byte costs its row, not the file
    [failure] = loaded.failures
    column = bad.decode("utf-8", "replace").index("\ufffd") + 1
    assert (failure.line, failure.field, failure.error) == (
        2,
        "<utf-8>",
        f"not valid UTF-8 (byte 0xff at column {column})",
    )


def test_read_jsonl_names_file_line_and_column(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": "\xc3\xa9\xfe"}\n')
    with pytest.raises(DataFileError, match=r"rows\.jsonl line 2: not valid UTF-8 \(byte 0xfe at column 9\)$"):
        read_jsonl(path)
    path.write_text('{"a": 1}\n\n{"a": }\n')
    with pytest.raises(DataFileError, match=r"rows\.jsonl line 3: not valid JSON: Expecting value \(column 7\)$"):
        read_jsonl(path)
