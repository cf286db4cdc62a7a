"""A release scaffolded from a table: ``release-assets scaffold NAME --from-table PATH --target COLUMN`` writes
``releases/NAME.yaml``; ``dg scaffold defs release_assets.ReleaseComponent NAME --from-table PATH --target COLUMN``
writes the same release as ``NAME/defs.yaml`` (its paths relative to that folder, as a component's are).

The release works as written: a ``table`` dataset whose schema, id, task and split are inferred from the file
(``datasets/infer_table.py``), the built-in starter model (``models/starter.py``) as its ``python_model``, and
gates set from what the data and the starter model measure (``evaluation/table_baseline.py``). What was inferred
is written out for review, with comments saying what each choice was made from; the lines to check first say
REVIEW. No Dagster here (the dg scaffolder in ``component.py`` calls :func:`write_table_release`).
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from release_assets.component.scaffold import ensure_platform, user_email
from release_assets.datasets.infer_table import ColumnFacts, TableDraft, TableInferenceError, infer_table
from release_assets.evaluation.table_baseline import STARTER, Baseline, measure, starter_params
from release_assets.manifest import is_defs_file, parse_manifest, release_name_problem
from release_assets.manifest.kinds import Task
from release_assets.manifest.paths import check_paths

DATA, MODEL = "data", "model"  # the two members' names
WIDTH = 118  # comment lines are wrapped to the repository's line length


@dataclass
class TableRelease:
    """A scaffolded release: where it was written, its text, and what it was made from (for the summary)."""

    name: str
    path: Path
    draft: TableDraft
    baseline: Baseline
    written: list[Path]  # the manifest, and the platform's defs.yaml when one was added


def _flow(value: Any) -> str:
    """A YAML value on one line (``{dtype: str, unique: true}``, ``[east, west]``, ``'yes'``)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _whole(value: Any) -> Any:
    """A bound as a person writes it: ``0``, not ``0.0``."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _bounds(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _whole(v) if k in ("min", "max") else v for k, v in d.items()}


def _comment(text: str, indent: int) -> list[str]:
    pad = " " * indent
    return textwrap.wrap(text, WIDTH - indent, initial_indent=pad + "# ", subsequent_indent=pad + "# ")


def _line(indent: int, key: str, value: Any, note: str = "") -> str:
    text = f"{' ' * indent}{_flow(key)}: {_flow(value)}"
    return f"{text}  # {note}" if note else text


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).removesuffix("T00:00:00")


def _column_note(name: str, facts: ColumnFacts, draft: TableDraft) -> str:
    dataset = draft.dataset
    parts = []
    classes = name == dataset.target and dataset.task != "regression"
    if classes and facts.counts:
        parts.append(", ".join(f"{k}: {n}" for k, n in sorted(facts.counts.items())))
    if facts.low is not None and not classes:
        parts.append(f"{_shown(facts.low)} .. {_shown(facts.high)}")
    if facts.missing:
        parts.append(f"missing in {facts.missing} rows")
    if facts.dtype == "datetime" and name in dataset.features:
        parts.append("the starter model drops datetimes")
    spec = dataset.columns[name]
    if facts.dtype == "str" and spec.allowed is None and name in dataset.features:
        parts.append(f"{facts.distinct} distinct values: free text? drop the column if it is no feature")
    return "; ".join(parts)


def _split_comment(draft: TableDraft) -> str:
    split, sides = draft.dataset.split, draft.split_rows
    counts = " / ".join(f"{sides[s]} {s}" for s in ("train", "val", "test") if s in sides)
    if draft.dataset.strategy == "time":
        return (
            f"Train on the past, test on the future: the latest {split.test:.0%} of rows by {split.by} are the test "
            f"split ({counts} rows). REVIEW: right when the model will predict rows newer than those it learnt from."
        )
    how = "keeping each class's share on both sides" if draft.dataset.strategy == "stratified" else "at random"
    return f"{split.test:.0%} of rows are the test split, {how} ({counts} rows); no datetime column to split by."


def _task_note(draft: TableDraft) -> str:
    dataset, facts = draft.dataset, draft.facts[draft.dataset.target]
    if dataset.task == "regression":
        return f"REVIEW: {facts.distinct} distinct numbers, predicted as a quantity"
    labels = sorted(facts.counts)  # as the classes are named: label_text of each value
    if dataset.task == "binary":
        positive = labels[-1] if labels else "true"
        return f"REVIEW: 2 values; the positive class (ROC AUC, PR AUC, calibration) is {positive!r}, the last sorted"
    return f"REVIEW: {facts.distinct} classes"


def render(name: str, draft: TableDraft, baseline: Baseline, owner: str, source: str, command: str) -> str:
    """The release manifest (``releases/NAME.yaml``), commented for review; ``source`` is the table's path as
    the person named it, ``command`` what wrote it."""
    dataset = draft.dataset
    task = dataset.task
    lines = [
        f"# Scaffolded from {source} ({draft.rows} rows) by:",
        f"#   {command}",
        *_comment(
            "It releases as written: the schema, task, split and gates were inferred from the table and the starter "
            "model's scores on it. Review the lines marked REVIEW before relying on it.",
            0,
        ),
        *[c for note in draft.notes for c in _comment(f"Note: {note}.", 0)],
        f"name: {name}",
        _line(0, "description", f"Predicts {dataset.target} ({task}) from {source}; scaffolded from the table."),
        _line(0, "owners", [owner], "REVIEW: who answers for this release"),
        "members:",
        f"  {DATA}:",
        "    kind: table",
        _line(4, "path", dataset.path),
    ]
    if dataset.id is not None:
        lines.append(_line(4, "id", dataset.id, "unique in every row: names rows in reports, never a model feature"))
    lines += [
        _line(4, "target", dataset.target),
        _line(4, "task", task, _task_note(draft)),
        *_comment(
            f"REVIEW the schema: a row that breaks it is listed and not trained on. Inferred from {draft.rows} rows: "
            "a dtype per column, `nullable` where a value is missing, `allowed` for text of few values (a new value "
            "is an invalid row), `min: 0` where no value is negative. Add the bounds you know (an age's max).",
            4,
        ),
        "    columns:",
    ]
    for column, spec in dataset.columns.items():
        note = _column_note(column, draft.facts[column], draft)
        lines.append(_line(6, column, _bounds(spec.model_dump(mode="json", exclude_defaults=True)), note))
    for column, why in draft.left_out.items():
        lines += _comment(f"{column}: not declared, so not read ({why}).", 6)
    if dataset.strategy == "time":
        split = {"strategy": "time", "by": dataset.split.by, "test": dataset.split.test}
    else:
        split = {"strategy": dataset.strategy, "test": dataset.split.test, "seed": dataset.split.seed}
    lines += [*_comment(_split_comment(draft), 4), _line(4, "split", split)]
    if dataset.slices:
        lines.append(_line(4, "slices", list(dataset.slices), "the model is also scored per value of these"))
    learner = "a ridge regression" if task == "regression" else "a logistic regression"
    lines += [
        f"  {MODEL}:",
        "    kind: python_model",
        f"    data: {DATA}",
        *_comment(
            f"The built-in starter model: numbers scaled, text and bool columns one-hot, datetimes dropped, then "
            f"{learner}. REVIEW: replace it with your own `package.module:function`, called as "
            "function(X, y, params) with the train split's feature columns and target, returning the fitted model.",
            4,
        ),
        _line(4, "train", STARTER),
        _line(4, "params", starter_params(task)),
        "gates:",
        f"  {DATA}:",
    ]
    data_notes = {
        "invalid_rows": "rows that break the schema",
        "duplicates": "rows repeating another (every column but the id)",
        "leakage": "test rows whose features are a train row's",
        "label_coverage": _coverage_note(draft),
        "drift": "against the champion's data: a warning until one is promoted",
    }
    for gate, bound in draft.gates.items():
        lines.append(_line(4, gate, _bounds(bound), data_notes.get(gate, "")))
    lines += [
        f"  {MODEL}:",
        *_comment(
            f"REVIEW: set from the starter model's scores on the {baseline.test_rows} test rows, a little below them "
            "(two standard errors), so this release passes. Raise them to what the model must reach.",
            4,
        ),
    ]
    for gate, made in baseline.gates.items():
        lines.append(_line(4, gate, _bounds(made.bound), made.comment))
    return "\n".join(lines) + "\n"


def _coverage_note(draft: TableDraft) -> str:
    sides = draft.split_labels
    if not sides:
        return ""
    side, label, n = min(((s, lab, n) for s, c in sides.items() for lab, n in c.items()), key=lambda x: x[2])
    return f"rows of each class in each split; the fewest: {n} ({label!r} in {side})"


def as_defs_yaml(manifest: str, type_name: str) -> str:
    """The manifest as a component's ``defs.yaml``: the leading comments, ``type:``, the rest under ``attributes:``."""
    lines = manifest.splitlines()
    head = 0
    while head < len(lines) and lines[head].startswith("#"):
        head += 1
    body = [f"  {line}" if line else line for line in lines[head:]]
    paths = "# Paths in this file are relative to this folder; `dg check yaml` checks it, `dg check defs` loads it."
    return "\n".join([*lines[:head], paths, f"type: {type_name}", "attributes:", *body]) + "\n"


def resolve_table(given: str, project_root: Path | None) -> Path:
    """The table a person named: relative to the working directory, else to the project root."""
    path = Path(given).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, *([project_root / path] if project_root else [])]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise TableInferenceError(f"{given}: table file not found")
    return found.resolve()


def write_table_release(
    name: str,
    table: str,
    target: str,
    out: Path,
    project_root: Path | None,
    *,
    task: Task | None = None,
    type_name: str | None = None,
    owner: str | None = None,
    command: str = "",
) -> TableRelease:
    """Scaffold the release ``name`` of ``table`` predicting ``target`` into ``out``: a ``releases/NAME.yaml``, or
    a component's ``defs.yaml`` when ``out`` is one (``type_name`` its type; the platform's defs.yaml is added
    beside its folder when the project declares none). Refuses to overwrite; checked as a manifest is loaded
    before a byte is written."""
    problem = release_name_problem(name)
    if problem:
        raise TableInferenceError(problem)
    if out.exists():
        raise TableInferenceError(f"{out}: already exists; remove it or choose another file to write")
    defs = is_defs_file(out)
    if not defs and out.stem != name:
        raise TableInferenceError(f"{out}: a release file is named after its release ({name}.yaml)")
    file = resolve_table(table, project_root)
    if project_root is not None and not file.is_relative_to(project_root.resolve()):
        raise TableInferenceError(
            f"{table}: outside the project ({project_root}); copy it into the project, a release reads its files there"
        )
    root = out.parent if defs else (project_root or out.parent)  # where the manifest's paths start
    manifest_path = Path(os.path.relpath(file, root.resolve())).as_posix()
    draft = infer_table(file, target, task, manifest_path=manifest_path)
    baseline = measure(draft.dataset, file)
    draft.notes.extend(baseline.warnings)
    text = render(name, draft, baseline, owner or user_email(), table, command or _command(name, table, target, task))
    if defs:
        text = as_defs_yaml(text, type_name or "release_assets.ReleaseComponent")
    # Loaded as a release loads the file it becomes (its name and folder decide how it is read), paths included,
    # before a byte is written: what is written releases as written.
    manifest = parse_manifest(yaml.safe_load(text), str(out)).model_copy(update={"source": out})
    created = not out.parent.exists()
    out.parent.mkdir(parents=True, exist_ok=True)  # a relative path through it resolves only once it exists
    try:
        check_paths(manifest, project_root or out.parent)
    except Exception:
        if created:
            out.parent.rmdir()
        raise
    try:
        with out.open("x", encoding="utf-8") as fh:  # never over a file written meanwhile
            fh.write(text)
    except FileExistsError:
        raise TableInferenceError(f"{out}: already exists; remove it or choose another file to write") from None
    written = [out, *(ensure_platform(out.parent.parent) if defs else [])]
    return TableRelease(name, out, draft, baseline, written)


def _command(name: str, table: str, target: str, task: Task | None) -> str:
    extra = f" --task {task}" if task else ""
    return f"release-assets scaffold {name} --from-table {table} --target {target}{extra}"
