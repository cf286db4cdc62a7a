"""Raw sources to validated rows, and validated rows to deterministic splits. No Dagster here.

Every dataset becomes rows of one shape: ``id``, ``label`` (a string), ``group`` (what must stay together
across a split) and the features (``features``, ``pixels`` or ``text`` plus slice attributes).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from release_assets.core.textfiles import NotUTF8Error, byte_lines, decode_utf8
from release_assets.datasets.digits import load_digits_arrays, pixels_group
from release_assets.datasets.profile import build_profile
from release_assets.datasets.schemas import IRIS_SPECIES, SCHEMAS, schema_columns
from release_assets.datasets.split import SPLITS, assign_splits
from release_assets.manifest import JsonlDataset, SklearnDataset, SplitSpec


class DataFileError(ValueError):
    """A data file that cannot be read; the message names the file and the line."""


@dataclass
class RowFailure:
    """A row that breaks its schema: where it is and what is wrong, for a person to fix the source."""

    line: int
    row_id: str
    field: str
    error: str


@dataclass
class LoadedRows:
    source: str
    rows: list[dict[str, Any]]
    failures: list[RowFailure] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.rows) + len(self.failures)


def _validate(records: list[tuple[int, Any]], schema: str, source: str) -> LoadedRows:
    model = SCHEMAS[schema]
    loaded = LoadedRows(source=source, rows=[])
    for line, record in records:
        row_id = str(record.get("id", f"line {line}")) if isinstance(record, dict) else f"line {line}"
        try:
            row = model.model_validate(record)
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"]) or "<row>"
                loaded.failures.append(RowFailure(line, row_id, where, err["msg"]))
            continue
        loaded.rows.append(row.model_dump(mode="json", by_alias=True))
    return loaded


def _read_jsonl(path: Path) -> tuple[list[tuple[int, Any]], list[RowFailure]]:
    records, failures = [], []
    for line_no, raw in byte_lines(path):
        try:
            records.append((line_no, json.loads(decode_utf8(raw, line_no))))
        except NotUTF8Error as exc:
            # Listed like any other broken row: the rest of the source still loads.
            failures.append(RowFailure(line_no, f"line {line_no}", "<utf-8>", exc.detail))
        except json.JSONDecodeError as exc:
            failures.append(RowFailure(line_no, f"line {line_no}", "<json>", f"not valid JSON: {exc.msg}"))
    return records, failures


def load_sklearn(name: str) -> LoadedRows:
    if name == "iris":
        from sklearn.datasets import load_iris

        bunch = load_iris()
        records = [
            {"id": f"iris-{i:03d}", "features": [float(v) for v in x], "label": IRIS_SPECIES[int(y)]}
            for i, (x, y) in enumerate(zip(bunch.data, bunch.target, strict=True))
        ]
    elif name == "digits":
        images, labels = load_digits_arrays()
        records = [
            {"id": f"digit-{i:04d}", "pixels": [int(v) for v in img.ravel()], "label": str(int(y))}
            for i, (img, y) in enumerate(zip(images, labels, strict=True))
        ]
    else:
        raise ValueError(f"unknown scikit-learn dataset {name!r}")
    return _validate(list(enumerate(records, start=1)), name, f"sklearn.datasets.load_{name}")


def load_jsonl(path: Path, schema: str) -> LoadedRows:
    if not path.exists():
        raise FileNotFoundError(f"{path}: dataset file not found")
    records, unparsable = _read_jsonl(path)
    if not records and not unparsable:  # nothing to validate, split or train on: say so about the file itself
        raise DataFileError(f"{path}: no rows (the file is empty or holds only blank lines)")
    loaded = _validate(records, schema, str(path))
    loaded.failures = sorted(unparsable + loaded.failures, key=lambda f: f.line)
    return loaded


def load_member(member: SklearnDataset | JsonlDataset, project_root: Path) -> LoadedRows:
    if isinstance(member, SklearnDataset):
        return load_sklearn(member.name)
    return load_jsonl(project_root / member.path, member.schema_)


def normalise(rows: list[dict[str, Any]], member: SklearnDataset | JsonlDataset) -> list[dict[str, Any]]:
    """Give every row the common ``label`` and ``group`` fields the split and the trainers rely on."""
    if isinstance(member, JsonlDataset):
        return [{**r, "label": r[member.stratify], "group": r[member.group_by]} for r in rows]
    if member.name == "digits":
        return [{**r, "group": pixels_group(r["pixels"])} for r in rows]
    # Identical measurements form one group, so iris's duplicate rows cannot straddle train and test.
    return [{**r, "group": json.dumps(r["features"])} for r in rows]


def split_rows(rows: list[dict[str, Any]], spec: SplitSpec) -> dict[str, list[dict[str, Any]]]:
    sides = assign_splits(
        [r["label"] for r in rows], [r["group"] for r in rows], test=spec.test, val=spec.val, seed=spec.seed
    )
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for row, side in zip(rows, sides, strict=True):
        out[side].append(row)
    return {s: r for s, r in out.items() if r or s != "val"}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read rows this project wrote; any unreadable line is an error naming the file and the line."""
    rows = []
    for line_no, raw in byte_lines(path):
        try:
            rows.append(json.loads(decode_utf8(raw, line_no)))
        except NotUTF8Error as exc:
            raise DataFileError(f"{path} line {line_no}: {exc.detail}") from None
        except json.JSONDecodeError as exc:
            raise DataFileError(f"{path} line {line_no}: not valid JSON: {exc.msg} (column {exc.colno})") from None
    return rows


def split_summary(splits: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "rows": {side: len(rows) for side, rows in splits.items()},
        "labels": {side: dict(sorted(Counter(r["label"] for r in rows).items())) for side, rows in splits.items()},
    }


ROWS_FILE = "rows.jsonl"


def build_raw(member: SklearnDataset | JsonlDataset, project_root: Path, out_dir: Path) -> dict[str, Any]:
    """Validate a source into ``rows.jsonl``; rows that break the schema are listed, not written."""
    loaded = load_member(member, project_root)
    rows = normalise(loaded.rows, member)
    write_jsonl(out_dir / ROWS_FILE, rows)
    return {
        "source": loaded.source,
        "metrics": {"rows": len(rows), "invalid_rows": len(loaded.failures)},
        "labels": dict(sorted(Counter(r["label"] for r in rows).items())),
        # What it offers the models built from it (manifest/contracts.py): its row schema's fields.
        "columns": schema_columns(member.name if isinstance(member, SklearnDataset) else member.schema_),
        "examples": [
            {"line": f.line, "id": f.row_id, "field": f.field, "error": f.error} for f in loaded.failures[:20]
        ],
    }


def write_splits(splits: dict[str, list[dict[str, Any]]], rows: list[dict[str, Any]], out_dir: Path) -> None:
    """Each side's rows, and the reference profile of all of them (it travels in the release unit: the next
    candidate's drift gate compares against it)."""
    for side, side_rows in splits.items():
        write_jsonl(out_dir / f"{side}.jsonl", side_rows)
    (out_dir / "profile.json").write_text(json.dumps(build_profile(rows), sort_keys=True))


def build_split(member: SklearnDataset | JsonlDataset, raw_dir: Path, out_dir: Path) -> dict[str, Any]:
    rows = read_jsonl(raw_dir / ROWS_FILE)
    splits = split_rows(rows, member.split)
    write_splits(splits, rows, out_dir)
    return split_summary(splits)


@dataclass(frozen=True)
class DatasetRuntime:
    """What a dataset kind's plugin object (its ``MemberKind.runtime``) provides to the data stage: rows validated
    into ``rows.jsonl`` (``build_raw``), then the split folder (``build_split``: ``train``/``val``/``test.jsonl``
    and ``profile.json``). Every row has ``id``, ``label`` and ``group``; the rest is the kind's own."""

    build_raw: Any  # (member, project_root, out_dir) -> summary with metrics {rows, invalid_rows}, labels, examples
    build_split: Any  # (member, raw_dir, out_dir) -> summary with rows and labels per side
    source_files: Any  # (member, project_root) -> the local files it reads (their digests enter the build's inputs)
    modules: tuple[str, ...]  # the modules whose source is the build's code version
    # (member, project_root) -> what it reads from outside the project as it is now (an s3:// object's ETag), or
    # None: read when the asset runs and made an input of the build.
    source_identity: Any = None


BUILTIN = DatasetRuntime(
    build_raw,
    build_split,
    lambda member, root: [root / member.path] if isinstance(member, JsonlDataset) else [],
    (__name__, "release_assets.core.textfiles", "release_assets.datasets.schemas", "release_assets.datasets.digits"),
)
