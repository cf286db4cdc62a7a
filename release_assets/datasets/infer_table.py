"""A ``table`` dataset inferred from its file: the schema, the id column, the task its target sets, a split and
the data gates, each chosen so that the data it was inferred from passes (``release-assets scaffold --from-table``
and ``dg scaffold defs release_assets.ReleaseComponent NAME --from-table``). No Dagster here.

The rules, each conservative (a schema must accept the data it was inferred from; a person tightens it later):

- **dtype** per column, from its values as ``datasets/table.py`` reads them (a CSV cell is text): ``bool`` when
  every value is true/false, ``int`` when every value is a whole number written without a decimal point (and
  without a leading zero: ``007`` is a code, kept as text), ``float`` when every value is a finite number,
  ``datetime`` when every value is a date or time with a 4-digit year or a clock time, else ``str``. Each
  candidate is tried with the reader's own conversion, so what is inferred is what reading accepts.
- **nullable** when any value is missing (a blank cell of a non-text column is missing, as the reader counts it).
- **allowed** for text columns of few values (at most 20 distinct, and fewer than half the rows): a category.
- **min: 0** for numeric columns with no negative value; no other bound (nothing tighter than the data).
- **unique** for id-like columns: named like an id (``id``, ``*_id``, ``*Id``, ``uuid``, ``*_key``), text or int,
  never missing, a different value in every row. The first is the dataset's ``id``; any other is left out of
  ``columns`` (an undeclared column is not read, so it is no model feature).
- **task** from the target: two values are ``binary``; text, bool, or ints of at most 20 values ``multiclass``;
  other numbers ``regression``.
- **split**: by time (``strategy: time``, ``by`` the first datetime column that leaves every class on both
  sides), else stratified for classification and random for regression; 25% test.
- **gates**: ``invalid_rows``, ``duplicates`` and ``leakage`` at what the data shows (0 for clean data),
  ``label_coverage`` (classification) at the fewest rows of a class in a split, at most 10, and ``drift`` max 0
  with ``on_inconclusive: warn`` (there is no champion to compare with before the first promotion).

The result is checked the way a release checks it: the inferred ``TableDataset`` validates every row through
``datasets/table.py`` and splits them with its split, and only rows missing the target (which no schema may
allow) can fail.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from release_assets.datasets.build import DataFileError
from release_assets.datasets.quality import duplicate_rows, leakage
from release_assets.datasets.table import (
    coerce_cell,
    is_missing,
    label_text,
    read_file,
    split_table,
    table_rows,
    validate_rows,
)
from release_assets.manifest.kinds import Task
from release_assets.manifest.table import ColumnSpec, Dtype, TableDataset

MAX_CATEGORIES = 20  # a text column of at most this many values (and fewer than half the rows) is a category
MAX_INT_CLASSES = 20  # an int target of at most this many values is a class label, not a quantity
MAX_CLASSES = 50  # a text target of more values than this is refused unless --task multiclass says so
MAX_SLICES = 3  # category columns the model is also scored per value of
MAX_SLICE_VALUES = 10
TEST_SHARE = 0.25
MAX_LABEL_COVERAGE = 10

_ID_NAME = re.compile(r"^(id|uuid|guid|key)$|[_\- .](id|uuid|guid|key)$", re.IGNORECASE)
_CAMEL_ID = re.compile(r"[a-z0-9](Id|ID|Uuid|UUID|Guid|GUID|Key)$")  # customerId, orderID; never "paid"
_INT_TEXT = re.compile(r"^[+-]?(0|[1-9][0-9]*)$")
_CODE_TEXT = re.compile(r"^0[0-9]+$")
_DATE_TEXT = re.compile(r"(?<!\d)\d{4}(?!\d)|(?<!\d)\d{1,2}:\d{2}")
_TRUE_FALSE = {"true", "false"}


class TableInferenceError(DataFileError):
    """The table cannot be scaffolded as asked (no such column, a target of one value, ...); one line naming the
    file and the column."""


@dataclass(frozen=True)
class ColumnFacts:
    """What the data showed of one column, for the comments a person reviews."""

    dtype: Dtype
    missing: int
    distinct: int
    low: Any = None  # smallest and largest value (numbers, datetimes), for the comment beside the column
    high: Any = None
    counts: dict[str, int] = field(default_factory=dict)  # per value, for categories and targets


@dataclass
class TableDraft:
    """The inferred dataset (``dataset``, its ``path`` as the manifest will name it), its data gates, and what a
    person should review (``notes``: column -> remark, ``""`` for the dataset as a whole)."""

    dataset: TableDataset
    file: Path  # the table itself, wherever it is
    rows: int
    facts: dict[str, ColumnFacts]
    gates: dict[str, dict[str, Any]]
    split_rows: dict[str, int]  # rows per side of the chosen split
    split_labels: dict[str, dict[str, int]]  # classification: rows per class per side
    left_out: dict[str, str] = field(default_factory=dict)  # columns of the file not declared, and why
    notes: list[str] = field(default_factory=list)  # decisions a person should know of (fallbacks, tolerances)


def file_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    return {"parquet": "parquet", "pq": "parquet", "jsonl": "jsonl", "ndjson": "jsonl"}.get(suffix, "csv")


def read_table(path: Path) -> Any:
    """The file as ``datasets/table.py`` reads it (a CSV as text, Parquet and JSONL typed), every column."""
    try:
        frame = read_file(path, file_format(path))
    except DataFileError as exc:
        raise TableInferenceError(str(exc)) from None
    if frame.empty:
        raise TableInferenceError(f"{path}: no rows (the file holds a header at most)")
    frame.columns = [str(c) for c in frame.columns]
    duplicated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if duplicated or any(str(c).startswith("Unnamed: ") for c in frame.columns):
        raise TableInferenceError(f"{path}: every column needs a distinct name in the header ({list(frame.columns)})")
    return frame


def _blank(value: Any) -> bool:
    return isinstance(value, str) and not value.strip()


def _text(value: Any) -> str:
    """A value as the text rules read it (typed Parquet/JSONL values included)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        return repr(float(value))  # 3.0 stays "3.0": a float column, not an int one
    if isinstance(value, np.bool_):
        return "true" if value else "false"
    return str(value)


def _accepts(values: list[Any], dtype: Dtype) -> bool:
    spec = ColumnSpec(dtype=dtype)
    try:
        for value in values:
            coerce_cell(value, spec)
    except ValueError:
        return False
    return True


def _dtype(values: list[Any]) -> Dtype:
    """The narrowest dtype every (distinct, non-missing) value is, by the rules of the module docstring."""
    if not values:
        return "str"
    typed_bools = all(isinstance(v, bool | np.bool_) for v in values)
    texts = [_text(v) for v in values]
    if (typed_bools or all(t.lower() in _TRUE_FALSE for t in texts)) and _accepts(values, "bool"):
        return "bool"
    codes = any(_CODE_TEXT.match(t) for t in texts)  # 007, 01234: a code, whose leading zero a number loses
    if not codes and all(_INT_TEXT.match(t) for t in texts) and _accepts(values, "int"):
        return "int"
    if not codes and _accepts(values, "float"):
        return "float"
    datetimes = all(hasattr(v, "isoformat") for v in values) or all(_DATE_TEXT.search(t) for t in texts)
    if datetimes and _accepts(values, "datetime"):
        return "datetime"
    return "str"


def _id_like(name: str, dtype: Dtype, missing: int, distinct: int, rows: int) -> bool:
    named = _ID_NAME.search(name) or _CAMEL_ID.search(name)
    return bool(named) and dtype in ("str", "int") and missing == 0 and distinct == rows


def infer_column(name: str, raw: list[Any], rows: int) -> tuple[ColumnSpec, ColumnFacts, bool]:
    """One column's declared spec, what the data showed, and whether it is id-like."""
    present = [v for v in raw if not is_missing(v)]
    try:
        distinct_raw = list(dict.fromkeys(present))  # CSV text, or Parquet/JSONL scalars
    except TypeError:  # nested JSON values (lists, objects): text, as the reader's str dtype takes them
        present = [str(v) for v in present]
        distinct_raw = list(dict.fromkeys(present))
    dtype = _dtype([v for v in distinct_raw if not _blank(v)])
    if dtype != "str":
        present = [v for v in present if not _blank(v)]  # a blank cell of a non-text column is missing
    spec = ColumnSpec(dtype=dtype)
    coerced = {v: coerce_cell(v, spec) for v in distinct_raw if dtype == "str" or not _blank(v)}
    values = [coerced[v] for v in present]
    counts = Counter(values)
    missing = rows - len(values)
    low = min(values) if values and dtype in ("int", "float", "datetime") else None
    high = max(values) if values and dtype in ("int", "float", "datetime") else None
    updates: dict[str, Any] = {"nullable": missing > 0}
    if dtype in ("int", "float") and low is not None and low >= 0:
        updates["min"] = 0
    if dtype == "str" and 0 < len(counts) <= MAX_CATEGORIES and len(counts) < 0.5 * len(values):
        updates["allowed"] = sorted(counts)
    id_like = _id_like(name, dtype, missing, len(counts), rows)
    if id_like:
        updates["unique"] = True
    shown = dict(counts.most_common()) if dtype in ("str", "bool", "int") and len(counts) <= MAX_CATEGORIES else {}
    facts = ColumnFacts(dtype, missing, len(counts), low, high, {label_text(k): n for k, n in shown.items()})
    return ColumnSpec(**{**spec.model_dump(), **updates}), facts, id_like


def detect_task(name: str, facts: ColumnFacts, where: str) -> Task:
    """What the target's values make the model learn (module docstring); an error when nothing can be learnt."""
    if facts.distinct < 2:
        only = f" ({next(iter(facts.counts))!r})" if facts.counts else ""
        raise TableInferenceError(
            f"{where}: target {name!r} has {facts.distinct} distinct value{only}: there is nothing to learn"
        )
    if facts.dtype == "datetime":
        raise TableInferenceError(f"{where}: target {name!r} holds dates; a model predicts classes or numbers")
    if facts.distinct == 2:
        return "binary"
    if facts.dtype in ("str", "bool"):
        if facts.distinct > MAX_CLASSES:
            raise TableInferenceError(
                f"{where}: target {name!r} has {facts.distinct} distinct text values, too many classes to scaffold "
                "a classifier (pass --task multiclass to insist)"
            )
        return "multiclass"
    if facts.dtype == "int" and facts.distinct <= MAX_INT_CLASSES:
        return "multiclass"
    return "regression"


def _check_task(name: str, facts: ColumnFacts, task: Task, where: str) -> None:
    if task == "regression" and facts.dtype not in ("int", "float"):
        raise TableInferenceError(f"{where}: target {name!r} is {facts.dtype}; a regression target must be a number")
    if task == "binary" and facts.distinct != 2:
        raise TableInferenceError(f"{where}: target {name!r} has {facts.distinct} distinct values; binary needs 2")
    if task != "regression" and facts.distinct < 2:
        raise TableInferenceError(f"{where}: target {name!r} has one value: there is nothing to learn")
    if task != "regression" and facts.dtype == "datetime":
        raise TableInferenceError(f"{where}: target {name!r} holds dates; a model predicts classes or numbers")


def _side_counts(splits: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, int]]:
    return {side: dict(sorted(Counter(str(r["label"]) for r in rows).items())) for side, rows in splits.items()}


def _split_usable(splits: dict[str, list[dict[str, Any]]], task: Task, labels: list[str]) -> bool:
    if not splits.get("train") or not splits.get("test"):
        return False
    if task == "regression":
        return True
    return all(set(labels) <= {str(r["label"]) for r in rows} for rows in splits.values())


def infer_table(file: Path, target: str, task: Task | None = None, manifest_path: str | None = None) -> TableDraft:
    """The ``table`` dataset of ``file`` predicting ``target`` (module docstring). ``manifest_path`` is how the
    manifest names the file (relative to its root); ``task`` overrides the detected one."""
    frame = read_table(file)
    where = str(file)
    if target not in frame.columns:
        raise TableInferenceError(
            f"{where}: no column {target!r} to predict (the file has: {', '.join(map(str, frame.columns))})"
        )
    rows = len(frame)
    specs: dict[str, ColumnSpec] = {}
    facts: dict[str, ColumnFacts] = {}
    id_like: list[str] = []
    for name in frame.columns:
        spec, seen, is_id = infer_column(name, frame[name].tolist(), rows)
        specs[name], facts[name] = spec, seen
        if is_id and name != target:
            id_like.append(name)
    tf = facts[target]
    chosen = task or detect_task(target, tf, where)
    _check_task(target, tf, chosen, where)

    # The target: never missing (rows without it are invalid rows), a closed set of classes for classification.
    target_spec = specs[target].model_dump()
    target_spec.update(nullable=False, unique=False)
    if chosen != "regression":
        target_spec["min"] = None
        target_spec["allowed"] = None if tf.dtype == "bool" else _sorted_values(frame[target].tolist(), tf.dtype)
    specs[target] = ColumnSpec(**target_spec)

    row_id = next((c for c in id_like if c.lower() == "id"), id_like[0] if id_like else None)
    left_out = {
        c: f"unique in every row and named like an id, like {row_id!r}: an identifier, not a feature"
        for c in id_like
        if c != row_id
    }
    # A column missing in every row has no dtype to infer and teaches nothing.
    for name, seen in facts.items():
        if name not in (target, row_id) and seen.distinct == 0:
            left_out[name] = "missing in every row"
    columns = {c: s for c, s in specs.items() if c not in left_out}
    if len(columns) < 2:
        raise TableInferenceError(f"{where}: {target!r} is the only usable column: there is nothing to learn from")
    categories = [
        c
        for c, s in columns.items()
        if c not in (target, row_id) and s.allowed is not None and len(s.allowed) <= MAX_SLICE_VALUES
    ]
    datetimes = [c for c, s in columns.items() if s.dtype == "datetime" and c != target]
    if not [c for c in columns if c not in (target, row_id)]:
        raise TableInferenceError(f"{where}: no column is left to learn {target!r} from (only the target and the id)")

    notes: list[str] = []
    base = {
        "kind": "table",
        "path": manifest_path or str(file),
        "columns": columns,
        "target": target,
        "task": chosen,
        "id": row_id,
    }
    fallback = {"strategy": "random" if chosen == "regression" else "stratified", "test": TEST_SHARE, "seed": 0}
    candidates = [{"strategy": "time", "by": c, "test": TEST_SHARE} for c in datetimes] + [fallback]

    def dataset_for(split: dict[str, Any]) -> TableDataset:
        slices = [c for c in categories if c != split.get("by")][:MAX_SLICES]
        return TableDataset.model_validate({**base, "split": split, "slices": slices})

    # Every row as a release reads it: only rows without the target may fail (the schema was made from them).
    records, ids, failures = validate_rows(dataset_for(fallback), frame[list(columns)])
    wrong = {f.field for fs in failures.values() for f in fs} - {target}
    if wrong:  # a bug of the rules above, never the data's
        raise TableInferenceError(f"{where}: the inferred schema refuses its own rows (columns {sorted(wrong)})")
    keep = [i for i in range(len(records)) if i not in failures]
    labels = sorted({label_text(records[i][target]) for i in keep}) if chosen != "regression" else []
    for split in candidates:
        dataset = dataset_for(split)
        if not dataset.features:  # the time column was the only one left to learn from
            continue
        valid = table_rows(dataset, [records[i] for i in keep], [ids[i] for i in keep])
        splits = split_table(dataset, valid)
        if _split_usable(splits, chosen, labels):
            break
        if split.get("by") is not None:
            why = "a side empty" if not splits.get("train") or not splits.get("test") else "a class out of a side"
            notes.append(f"a time split by {split['by']!r} would leave {why}; split {fallback['strategy']} instead")
    if not splits.get("train") or not splits.get("test"):
        raise TableInferenceError(f"{where}: {len(valid)} valid rows are too few to split into train and test")

    missing_target = rows - len(valid)
    gates: dict[str, dict[str, Any]] = {"invalid_rows": {"max": missing_target}}
    if missing_target:
        notes.append(f"{missing_target} rows have no {target!r}: listed as invalid rows and left out")
    redundant = sum(len(g) - 1 for g in duplicate_rows(valid))
    gates["duplicates"] = {"max": redundant}
    if redundant:
        notes.append(f"{redundant} rows repeat another row (every column but the id): the duplicates gate allows them")
    leaked = len({test_id for _, test_id, _ in leakage(splits["train"], splits["test"])})
    gates["leakage"] = {"max": leaked}
    if leaked:
        notes.append(f"{leaked} test rows have the features of a train row: the leakage gate allows them")
    split_labels = _side_counts(splits) if chosen != "regression" else {}
    if split_labels:
        fewest = min(counts.get(label, 0) for counts in split_labels.values() for label in labels)
        gates["label_coverage"] = {"min": max(1, min(MAX_LABEL_COVERAGE, fewest))}
        if not fewest:
            absent = sorted(
                {f"{lab!r} in {side}" for side, c in split_labels.items() for lab in labels if not c.get(lab)}
            )
            notes.append(
                f"too few rows of a class to have it on both sides ({', '.join(absent)}): the label_coverage gate "
                "holds the release until the data has more"
            )
    gates["drift"] = {"max": 0, "on_inconclusive": "warn"}
    return TableDraft(
        dataset=dataset,
        file=file,
        rows=rows,
        facts=facts,
        gates=gates,
        split_rows={side: len(r) for side, r in splits.items()},
        split_labels=split_labels,
        left_out=left_out,
        notes=notes,
    )


def _sorted_values(raw: list[Any], dtype: Dtype) -> list[Any]:
    spec = ColumnSpec(dtype=dtype)
    values = {coerce_cell(v, spec) for v in raw if not is_missing(v) and not (dtype != "str" and _blank(v))}
    return sorted(values)
