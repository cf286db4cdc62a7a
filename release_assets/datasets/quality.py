"""Data quality gates that schemas cannot express: duplicated rows, train/test leakage and label coverage.

A schema checks one row at a time; these problems only show across rows. Duplicates overweight some examples,
a test row that also sits in train inflates every metric measured on it, and a label missing from test makes
per-class recall unmeasurable. Each check returns plain data and has a verdict function built like every gate.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any, Literal

from release_assets.verdict import Verdict

MAX_EXAMPLES = 20
Severity = Literal["block", "warn"]
_PUNCT = re.compile(r"[^\w\s]")
_SPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """Lowercase, punctuation stripped, whitespace collapsed: a copy with a changed comma is still a copy."""
    return _SPACE.sub(" ", _PUNCT.sub("", text.lower())).strip()


def describe(row: dict[str, Any]) -> str:
    """What a person needs to recognise a row: its text, its measurements, or which image it is."""
    if "text" in row:
        return row["text"]
    if "features" in row:
        features = row["features"]
        if isinstance(features, dict):  # a table's row: its columns by name
            return ", ".join(f"{k}={_value(v)}" for k, v in features.items())
        return ", ".join(f"{v:g}" for v in features)
    return f"8x8 image {row.get('id')}"


def _value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _content(row: dict[str, Any]) -> str:
    # id and group are bookkeeping the pipeline adds; two rows that differ only there are the same example.
    return json.dumps({k: v for k, v in row.items() if k not in ("id", "group")}, sort_keys=True)


def duplicate_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    """Groups (two ids or more) of rows with identical content, ignoring ``id`` and ``group``."""
    by_content: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        by_content[_content(row)].append(str(row["id"]))
    return sorted(ids for ids in by_content.values() if len(ids) > 1)


def _leak_key(row: dict[str, Any]) -> tuple[str, str] | None:
    if "text" in row:
        return "same normalised text", normalise_text(row["text"])
    if "pixels" in row:
        return "same pixels", json.dumps(row["pixels"])
    if "features" in row:
        return "same features", json.dumps(row["features"])
    return None


def leakage(train: list[dict[str, Any]], test: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """``(train_id, test_id, reason)`` for every test row whose input also appears in train."""
    seen: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in train:
        key = _leak_key(row)
        if key is not None:
            seen[key].append(str(row["id"]))
    return [
        (train_id, str(row["id"]), key[0])
        for row in test
        if (key := _leak_key(row)) is not None
        for train_id in seen.get(key, [])
    ]


def label_coverage(
    splits: dict[str, list[dict[str, Any]]], min_per_label: int, labels: Iterable[str] | None = None
) -> dict[str, Any]:
    """Per split, how many rows each label has; ``missing`` (none at all) and ``below_minimum`` (some, too few).

    The expected labels are ``labels`` when given (e.g. every intent of the schema), else every label seen in
    any split: a label present in train but absent from test is exactly the case to catch.
    """
    counts = {side: Counter(str(r["label"]) for r in rows) for side, rows in splits.items()}
    expected = sorted(set(labels) if labels is not None else {lab for c in counts.values() for lab in c})
    return {
        "labels": expected,
        "counts": {side: {lab: c.get(lab, 0) for lab in expected} for side, c in counts.items()},
        "missing": {side: [lab for lab in expected if c.get(lab, 0) == 0] for side, c in counts.items()},
        "below_minimum": {
            side: [lab for lab in expected if 0 < c.get(lab, 0) < min_per_label] for side, c in counts.items()
        },
    }


def _verdict(
    member: str, gate: str, ok: bool, reason: str, observed: float, bounds: dict[str, float | None], **kw: Any
) -> Verdict:
    return Verdict(member, gate, "passed" if ok else "failed", reason, observed, bounds, **kw)


def duplicates_verdict(
    member: str,
    rows: list[dict[str, Any]],
    max_duplicates: int = 0,
    *,
    gate: str = "duplicates",
    severity: Severity = "block",
) -> Verdict:
    """Fails when more than ``max_duplicates`` rows are redundant copies of another row."""
    groups = duplicate_rows(rows)
    by_id = {str(r["id"]): r for r in rows}
    redundant = sum(len(g) - 1 for g in groups)
    ok = redundant <= max_duplicates
    reason = (
        f"{redundant} of {len(rows)} rows duplicate another row ({len(groups)} groups of identical content); "
        f"the gate allows at most {max_duplicates}"
    )
    examples = [
        {"id": g[0], "duplicates": g[1:], "input": describe(by_id[g[0]]), "label": by_id[g[0]].get("label")}
        for g in groups[:MAX_EXAMPLES]
    ]
    bounds: dict[str, float | None] = {"min": None, "max": float(max_duplicates)}
    return _verdict(member, gate, ok, reason, float(redundant), bounds, severity=severity, examples=examples)


def leakage_verdict(
    member: str,
    train: list[dict[str, Any]],
    test: list[dict[str, Any]],
    max_leaked: int = 0,
    *,
    gate: str = "leakage",
    severity: Severity = "block",
) -> Verdict:
    """Fails when more than ``max_leaked`` test rows also appear (normalised) in train."""
    pairs = leakage(train, test)
    leaked = len({test_id for _, test_id, _ in pairs})
    ok = leaked <= max_leaked
    reason = (
        f"{leaked} of {len(test)} test rows also appear in train (matched on normalised text, pixels or "
        f"features); the gate allows at most {max_leaked}"
    )
    train_by_id = {str(r["id"]): r for r in train}
    test_by_id = {str(r["id"]): r for r in test}
    examples = [
        {
            "test_id": test_id,
            "train_id": train_id,
            "reason": why,
            "input": describe(test_by_id[test_id]),
            "train_input": describe(train_by_id[train_id]),
        }
        for train_id, test_id, why in pairs[:MAX_EXAMPLES]
    ]
    bounds: dict[str, float | None] = {"min": None, "max": float(max_leaked)}
    return _verdict(member, gate, ok, reason, float(leaked), bounds, severity=severity, examples=examples)


def label_coverage_verdict(
    member: str,
    splits: dict[str, list[dict[str, Any]]],
    min_per_label: int,
    labels: Iterable[str] | None = None,
    *,
    gate: str = "label_coverage",
    severity: Severity = "block",
) -> Verdict:
    """Fails when any split lacks a label or has fewer than ``min_per_label`` rows of it."""
    cov = label_coverage(splits, min_per_label, labels)
    short = [
        {"split": side, "label": lab, "count": cov["counts"][side][lab], "minimum": min_per_label}
        for side in cov["counts"]
        for lab in cov["labels"]
        if cov["counts"][side][lab] < min_per_label
    ]
    if short:
        listed = ", ".join(f"{s['label']!r} in {s['split']} ({s['count']})" for s in short[:8])
        reason = f"{len(short)} split/label pairs have fewer than {min_per_label} rows: {listed}"
    else:
        reason = f"every split has at least {min_per_label} rows of each of {len(cov['labels'])} labels"
    bounds: dict[str, float | None] = {"min": float(min_per_label), "max": None}
    examples = short[:MAX_EXAMPLES]
    return _verdict(member, gate, not short, reason, float(len(short)), bounds, severity=severity, examples=examples)


# Invalid rows are found by the schema while the raw asset builds (datasets/build.py); the gate only counts them.
# Its reason is what the CLI prints and the check shows, so it names the first rows itself: a count alone sends
# the person to the artifact to find out which line of which file to fix.
ROWS_IN_REASON = 3
ROWS_IN_TABLE = 10
_ERROR_IN_REASON = 60


def clip(text: str, limit: int) -> str:
    """One line of at most about ``limit`` characters, cut at a word boundary."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip() + " ..."


def _where(failure: dict[str, Any]) -> str:
    # "<json>", "<utf-8>" and "<row>" are not fields a person can look for: the line alone says where.
    field = str(failure.get("field", ""))
    return f"line {failure['line']}" + (f", field {field}" if field and not field.startswith("<") else "")


def invalid_rows_detail(file: str, failures: list[dict[str, Any]], total: int) -> tuple[str, list[dict[str, Any]]]:
    """The first failing rows as one line for a reason (``file line 4, field intent: ...; line 9: ...``) and as
    table rows (file, line, field, error). ``failures`` are the raw summary's examples, which it caps, so ``total``
    is the full count the gate measured."""
    if not failures:
        return "", []
    listed = "; ".join(f"{_where(f)}: {clip(f['error'], _ERROR_IN_REASON)}" for f in failures[:ROWS_IN_REASON])
    more = total - min(len(failures), ROWS_IN_REASON)
    text = f"{file} {listed}" + (f"; and {more} more" if more > 0 else "")
    table = [
        {"file": file, "line": f["line"], "field": f["field"], "error": f["error"]} for f in failures[:ROWS_IN_TABLE]
    ]
    return text, table
