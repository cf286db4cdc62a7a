"""The ``table`` dataset kind: a team's own CSV, Parquet or JSONL file, checked against the schema its manifest
declares, then split by the strategy it names. No Dagster here.

Reading turns each declared column into its dtype row by row (a CSV holds text), so a value that is not an int
is a failure of that row and that column, never a column silently read as strings; pandera then checks what the
schema says of each value (missing, allowed values, range, uniqueness). Failing rows are listed by line, id and
column (the ``invalid_rows`` gate decides whether any may be dropped), never trained on. A missing column, an
unreadable file or a file with no rows is an error naming the file: nothing is built from it.

Rows come out in the shape every dataset kind writes (``build.py``): ``id``, ``label`` (the target: a string for
classification, a number for regression), ``group`` (what must stay on one side of a split), ``features`` (the
feature columns by name), and ``slice`` (the columns the model is also scored per value of).
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from release_assets.core.s3_client import bounded_client
from release_assets.core.settings import Settings
from release_assets.datasets.build import (
    ROWS_FILE,
    DataFileError,
    DatasetRuntime,
    RowFailure,
    read_jsonl,
    write_jsonl,
    write_splits,
)
from release_assets.datasets.split import SPLITS, assign_splits
from release_assets.manifest import TableDataset
from release_assets.manifest.table import ColumnSpec

TABLE_FILE = "table.json"  # the schema, target, task, feature columns and classes: what a model and a server read
MAX_EXAMPLES = 20
_TRUE, _FALSE = {"true", "1", "yes", "y", "t"}, {"false", "0", "no", "n", "f"}


def frame_of_value(member: TableDataset, value: Any) -> Any:
    """An asset's value as a DataFrame: a pandas DataFrame, anything with ``to_pandas()`` (polars, pyarrow), or a
    list of row mappings."""
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return value.reset_index(drop=True)
    if hasattr(value, "to_pandas"):
        return value.to_pandas().reset_index(drop=True)
    if isinstance(value, list) and all(isinstance(r, dict) for r in value):
        return pd.DataFrame.from_records(value)
    raise DataFileError(f"{member.source}: its value is a {type(value).__name__}, not a table (a DataFrame)")


def asset_digest(value: Any) -> str:
    """A canonical digest of an asset's value: the same rows, columns and dtypes give the same digest whatever
    storage the IO manager used, so an unchanged upstream asset reuses the built table."""
    import pandas as pd

    frame = value if isinstance(value, pd.DataFrame) else None
    if frame is None:
        return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
    digest = hashlib.sha256(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame.reset_index(drop=True), index=True).to_numpy().tobytes())
    return digest.hexdigest()


def _check_columns(member: TableDataset, frame: Any, where: str) -> Any:
    if frame.empty:
        raise DataFileError(f"{where}: no rows")
    missing = [c for c in member.columns if c not in frame.columns]
    if missing:
        raise DataFileError(
            f"{where}: declared column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
            f"missing (it has: {', '.join(map(str, frame.columns))})"
        )
    return frame[list(member.columns)]


def read_frame(member: TableDataset, project_root: Path, value: Any = None) -> tuple[Any, str]:
    """The table as a DataFrame of text and typed values (nothing coerced yet), and how to name it in errors:
    its file, or (``value``) the loaded value of its Dagster asset."""
    if member.asset is not None:
        return _check_columns(member, frame_of_value(member, value), member.source), member.source
    if is_s3(member.path):
        with tempfile.TemporaryDirectory(prefix="table-") as work:
            local = Path(work) / Path(member.path or "").name
            download(member.path or "", local)
            return _check_columns(member, read_file(local, member.file_format()), member.source), member.source
    path = project_root / (member.path or "")
    frame = read_file(path, member.file_format())
    return _check_columns(member, frame, str(path)), str(path)


def is_s3(path: str | None) -> bool:
    return bool(path) and str(path).startswith("s3://")


def _s3(uri: str) -> tuple[Any, str, str]:
    """The client (bounded, configured by the RELEASE_ASSETS_S3_* settings), bucket and key of an s3:// URI."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise DataFileError(f"{uri}: not an s3://bucket/key URI")
    settings = Settings()
    client = bounded_client(
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        connect_timeout=settings.s3_connect_timeout,
        read_timeout=settings.s3_read_timeout,
        max_attempts=settings.s3_max_attempts,
    )
    return client, bucket, key


def _s3_failure(uri: str, exc: Exception) -> DataFileError:
    code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")  # botocore's ClientError has one
    return DataFileError(f"{uri}: cannot be read from S3 ({code or type(exc).__name__}: {str(exc).splitlines()[0]})")


def s3_identity(uri: str) -> dict[str, Any]:
    """What an s3:// table is now (its ETag, version and size), read at build time: the build's input, so a
    changed object is read again and an unchanged one reuses the build."""
    client, bucket, key = _s3(uri)
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except Exception as exc:  # botocore's ClientError, or a connection error: both say why in one line
        raise _s3_failure(uri, exc) from None
    return {"uri": uri, "etag": head.get("ETag"), "version": head.get("VersionId"), "size": head.get("ContentLength")}


def download(uri: str, target: Path) -> None:
    client, bucket, key = _s3(uri)
    try:
        client.download_file(bucket, key, str(target))
    except Exception as exc:  # as above
        raise _s3_failure(uri, exc) from None


def read_file(path: Path, fmt: str) -> Any:
    """A table file as pandas reads it here: a CSV as text (the declared dtype decides later), Parquet and JSONL
    typed as stored; an error naming the file when it is missing or unreadable."""
    import pandas as pd

    if not path.is_file():
        raise DataFileError(f"{path}: table file not found")
    try:
        if fmt == "csv":
            # Every cell as text: the declared dtype decides, row by row (pandas would read a column with one bad
            # cell as strings, and the error would name no row).
            frame = pd.read_csv(path, dtype=str, keep_default_na=True, skipinitialspace=True)
        elif fmt == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_json(path, lines=True, dtype=False)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{path}: not a readable {fmt} file: {str(exc).splitlines()[0]}") from None
    return frame


def _line(fmt: str, index: int) -> int:
    """Where a row is in its file, for a person to find it: CSV has a header line, JSONL none, Parquet rows."""
    return index + 2 if fmt == "csv" else index + 1  # JSONL lines, Parquet and asset rows count from 1


def is_missing(value: Any) -> bool:
    import pandas as pd

    return value is None or (not isinstance(value, str | bool) and bool(pd.isna(value)))


def coerce_cell(value: Any, spec: ColumnSpec) -> Any:
    """One cell as its declared dtype, JSON-ready (datetimes as ISO text); ValueError saying why it is not one."""
    if spec.dtype == "str":
        return str(value)
    if spec.dtype == "bool":
        if isinstance(value, bool | np.bool_):
            return bool(value)
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError(f"{value!r} is not a bool (true/false, 1/0, yes/no)")
    if spec.dtype == "datetime":
        import pandas as pd

        stamp = pd.to_datetime(value, errors="coerce")
        if pd.isna(stamp):
            raise ValueError(f"{value!r} is not a date or time")
        return stamp.isoformat()
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    if spec.dtype == "int":
        if not number.is_integer():
            raise ValueError(f"{value!r} is not a whole number")
        return int(number)
    return number


def _schema(member: TableDataset):
    """The declared columns as a pandera schema over the coerced values (one row per record)."""
    import pandera.pandas as pa

    dtypes = {"int": "Int64", "float": "float64", "str": "object", "bool": "boolean", "datetime": "object"}
    columns = {}
    for name, spec in member.columns.items():
        checks = []
        if spec.allowed is not None:
            checks.append(pa.Check.isin(spec.allowed, error=f"one of {spec.allowed}"))
        if spec.min is not None:
            checks.append(pa.Check.ge(spec.min, error=f">= {spec.min:g}"))
        if spec.max is not None:
            checks.append(pa.Check.le(spec.max, error=f"<= {spec.max:g}"))
        columns[name] = pa.Column(dtypes[spec.dtype], checks=checks, nullable=spec.nullable, unique=spec.unique)
    return pa.DataFrameSchema(columns)


def row_ids(member: TableDataset, frame: Any) -> list[str]:
    """Each row's id: its ``id`` column, else its row number (1-based, as a person counts)."""
    if member.id is None:
        return [f"row {i + 1}" for i in range(len(frame))]
    return [f"row {i + 1}" if is_missing(v) else str(v) for i, v in enumerate(frame[member.id].tolist())]


def validate_rows(
    member: TableDataset, frame: Any
) -> tuple[list[dict[str, Any]], list[str], dict[int, list[RowFailure]]]:
    """Every row's values as declared, each row's id, and the failures by row position (dtype first, then
    pandera's checks)."""
    import pandas as pd
    import pandera.pandas as pa

    fmt = member.file_format()
    failures: dict[int, list[RowFailure]] = {}
    ids = row_ids(member, frame)

    def fail(position: int, column: str, error: str) -> None:
        failures.setdefault(position, []).append(RowFailure(_line(fmt, position), ids[position], column, error))

    records: list[dict[str, Any]] = [{} for _ in range(len(frame))]
    for column, spec in member.columns.items():
        for position, raw in enumerate(frame[column].tolist()):
            if is_missing(raw) or (isinstance(raw, str) and spec.dtype != "str" and not raw.strip()):
                records[position][column] = None
                continue
            try:
                records[position][column] = coerce_cell(raw, spec)
            except ValueError as exc:
                records[position][column] = None
                fail(position, column, f"{exc} (declared {spec.dtype})")
    typed = pd.DataFrame.from_records(records, columns=list(member.columns))
    for name, spec in member.columns.items():
        if spec.dtype == "int":
            typed[name] = typed[name].astype("Int64")
        elif spec.dtype == "float":
            typed[name] = typed[name].astype("float64")
        elif spec.dtype == "bool":
            typed[name] = typed[name].astype("boolean")
    try:
        _schema(member).validate(typed, lazy=True)
    except pa.errors.SchemaErrors as exc:
        for case in exc.failure_cases.to_dict("records"):
            position, column = case.get("index"), case.get("column")
            if position is None or is_missing(position) or column is None:
                continue
            position = int(position)
            if any(f.field == column for f in failures.get(position, [])):
                continue  # already failed its dtype: the value checked here is a placeholder
            check = str(case.get("check"))
            fail(position, column, _check_error(check, case.get("failure_case")))
    return records, ids, failures


def _check_error(check: str, value: Any) -> str:
    if check == "not_nullable":
        return "missing (the column is not nullable)"
    if check == "field_uniqueness":
        return f"{value!r} duplicates another row's (the column is unique)"
    return f"{value!r} is not {check}"


def table_rows(member: TableDataset, records: list[dict[str, Any]], ids: list[str]) -> list[dict[str, Any]]:
    """Valid records in the common row shape (module docstring)."""
    features = member.features
    out = []
    for record, row_id in zip(records, ids, strict=True):
        target = record[member.target]
        feats = {c: record[c] for c in features}
        # A group split keeps its column's rows together; otherwise rows with identical features form one group,
        # so a copy cannot sit in train and in test.
        by_column = member.strategy == "group"
        group = str(record[member.split.by or ""]) if by_column else json.dumps(feats, sort_keys=True)
        row: dict[str, Any] = {
            "id": row_id,
            "label": float(target) if member.task == "regression" else label_text(target),
            "group": group,
            "features": feats,
        }
        if member.slices:
            row["slice"] = {c: str(record[c]) for c in member.slices}
        if member.strategy == "time":
            row["time"] = record[member.split.by or ""]
        out.append(row)
    return out


def label_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def classes(member: TableDataset, rows: list[dict[str, Any]]) -> list[str]:
    """The target's classes in a fixed order: the declared ``allowed`` values, else those seen, sorted (as
    scikit-learn orders them, so an imported model's output columns match without `labels:`)."""
    if member.task == "regression":
        return []
    declared = member.columns[member.target].allowed
    return sorted({label_text(v) for v in declared}) if declared else sorted({r["label"] for r in rows})


def positive_class(member: TableDataset, labels: list[str]) -> str | None:
    """A binary task's positive class: the declared ``positive``, else the second of the sorted classes."""
    if member.task != "binary" or len(labels) != 2:
        return None
    return label_text(member.positive) if member.positive is not None else labels[1]


def table_info(member: TableDataset, rows: list[dict[str, Any]]) -> dict[str, Any]:
    labels = classes(member, rows)
    return {
        "format": "release_assets.table/v1",
        "task": member.task,
        "target": member.target,
        "features": {c: member.columns[c].model_dump(mode="json", exclude_defaults=True) for c in member.features},
        # The order a model reads its columns in (an ONNX model's input is one vector): JSON keys may be re-sorted.
        "feature_columns": list(member.features),
        "labels": labels,
        "positive": positive_class(member, labels),
        "slices": list(member.slices),
    }


def build_raw(member: TableDataset, project_root: Path, out_dir: Path, value: Any = None) -> dict[str, Any]:
    """``value``: the loaded value of the member's Dagster asset (``asset:``), else the file is read."""
    frame, source = read_frame(member, project_root, value)
    records, ids, failures = validate_rows(member, frame)
    valid = [i for i in range(len(records)) if i not in failures]
    rows = table_rows(member, [records[i] for i in valid], [ids[i] for i in valid])
    if not rows:
        first = next(iter(failures.values()))[0] if failures else None
        cause = f" (line {first.line}, column {first.field}: {first.error})" if first else ""
        raise DataFileError(f"{source}: no row passes the declared schema{cause}")
    write_jsonl(out_dir / ROWS_FILE, rows)
    (out_dir / TABLE_FILE).write_text(json.dumps(table_info(member, rows), indent=1, sort_keys=True))
    listed = [f for i in sorted(failures) for f in failures[i]]
    return {
        "source": source,
        **({"asset_digest": asset_digest(value)} if member.asset is not None else {}),
        "metrics": {"rows": len(rows), "invalid_rows": len(failures)},
        "labels": dict(sorted(Counter(r["label"] for r in rows).items())) if member.task != "regression" else {},
        # What the table offers the models built from it (manifest/contracts.py): each declared column's dtype.
        "columns": {name: spec.dtype for name, spec in sorted(member.columns.items())},
        "examples": [
            {"line": f.line, "id": f.row_id, "field": f.field, "error": f.error} for f in listed[:MAX_EXAMPLES]
        ],
    }


def split_table(member: TableDataset, rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows by side, as ``member.split`` says; the same rows and seed give the same split everywhere."""
    spec = member.split
    if member.strategy == "time":
        return _time_split(rows, spec.test, spec.val)
    # random or group: one stratum, groups ordered by a seeded hash
    labels = [str(r["label"]) for r in rows] if member.strategy == "stratified" else ["all"] * len(rows)
    sides = assign_splits(labels, [r["group"] for r in rows], test=spec.test, val=spec.val, seed=spec.seed)
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for row, side in zip(rows, sides, strict=True):
        out[side].append(row)
    return {s: r for s, r in out.items() if r or s != "val"}


def _time_split(rows: list[dict[str, Any]], test: float, val: float) -> dict[str, list[dict[str, Any]]]:
    """Train on the past, test on the future: rows ordered by time, the latest ``test`` share is test, the
    ``val`` share before it validation. Rows of one instant stay on one side (no future row trains a past one)."""
    ordered = sorted(rows, key=lambda r: (r["time"] is None, r["time"], r["id"]))
    instants = sorted({r["time"] for r in ordered if r["time"] is not None})
    n = len(ordered)
    side_of: dict[Any, str] = {}
    seen = 0
    counts = Counter(r["time"] for r in ordered)
    for instant in instants:
        seen += counts[instant]
        share = seen / n
        side_of[instant] = (
            "train" if share <= 1 - test - val + 1e-9 else ("val" if share <= 1 - test + 1e-9 else "test")
        )
    if instants and "test" not in side_of.values():
        side_of[instants[-1]] = "test"  # the latest instant is always tested, however many rows share it
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for row in ordered:
        out[side_of.get(row["time"], "train")].append(row)
    return {s: r for s, r in out.items() if r or s != "val"}


def build_split(member: TableDataset, raw_dir: Path, out_dir: Path) -> dict[str, Any]:
    rows = read_jsonl(raw_dir / ROWS_FILE)
    splits = split_table(member, rows)
    if not splits.get("train") or not splits.get("test"):
        raise DataFileError(
            f"{member.source}: a {member.strategy} split of {len(rows)} rows leaves "
            f"{'no test rows' if not splits.get('test') else 'no train rows'} (more rows, or another split.test)"
        )
    write_splits(splits, rows, out_dir)
    (out_dir / TABLE_FILE).write_text((raw_dir / TABLE_FILE).read_text())
    summary: dict[str, Any] = {"rows": {side: len(r) for side, r in splits.items()}, "strategy": member.strategy}
    if member.task != "regression":
        summary["labels"] = {side: dict(sorted(Counter(r["label"] for r in rs).items())) for side, rs in splits.items()}
    return summary


RUNTIME = DatasetRuntime(
    build_raw,
    build_split,
    lambda member, root: [root / member.path] if member.path is not None and not is_s3(member.path) else [],
    (__name__, "release_assets.datasets.build", "release_assets.manifest.table"),
    lambda member, root: s3_identity(member.path) if is_s3(member.path) else None,
)
