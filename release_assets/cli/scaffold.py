"""``release-assets scaffold NAME --from-table PATH --target COLUMN``: a release for a table that works as written
(``component/table_scaffold.py``): its schema inferred and written out for review, the task detected, a split,
the starter model and gates set from what the data and that model measure. Writes ``releases/NAME.yaml`` at the
project root (``--out`` another file; a ``defs.yaml`` there is written as a ``ReleaseComponent``), never over an
existing file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from release_assets.manifest.kinds import TASKS


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _bound(bound: dict) -> str:
    parts = [f">= {bound['min']:g}" if "min" in bound else "", f"<= {bound['max']:g}" if "max" in bound else ""]
    return " and ".join(p for p in parts if p)


def cmd_scaffold(args: argparse.Namespace) -> int:
    from release_assets.component.table_scaffold import write_table_release
    from release_assets.core.settings import get_settings

    settings = get_settings()
    root = settings.project_root
    out = Path(args.out) if args.out else (settings.releases_dir or root / "releases") / f"{args.name}.yaml"
    out = out if out.is_absolute() else Path.cwd() / out
    made = write_table_release(
        args.name,
        args.from_table,
        args.target,
        out,
        root,
        task=args.task,
        command=" ".join(["release-assets", *argv_of(args)]),
    )
    dataset, baseline = made.draft.dataset, made.baseline
    split = f"{dataset.strategy} split" + (f" by {dataset.split.by}" if dataset.strategy == "time" else "")
    sides = " / ".join(f"{n} {side}" for side, n in made.draft.split_rows.items())
    print(f"wrote {_shown(made.path)}: {dataset.task} release of {args.from_table} predicting {dataset.target}")
    print(
        f"  {len(dataset.columns)} columns declared"
        + (f" (id: {dataset.id})" if dataset.id else "")
        + (f", {len(made.draft.left_out)} left out" if made.draft.left_out else "")
        + f"; {split}: {sides} rows"
    )
    scores = ", ".join(
        f"{g} {baseline.metrics[g]:.3f}" for g in baseline.gates if g in baseline.metrics and g != "p95_ms"
    )
    print(f"  starter model on the test split: {scores}")
    gates = ", ".join(f"{g} {_bound(t.bound)}" for g, t in baseline.gates.items() if g != "regression")
    print(f"  model gates: {gates}")
    for extra in made.written[1:]:
        print(f"wrote {_shown(extra)}: the platform every release of the project needs")
    for note in made.draft.notes:
        print(f"NOTE: {note}", file=sys.stderr)
    print(f"next: review the lines marked REVIEW in {_shown(made.path)}, then `release-assets release {args.name}`")
    return 0


def argv_of(args: argparse.Namespace) -> list[str]:
    """The command as typed (for the file's header), in a canonical order."""
    words = ["scaffold", args.name, "--from-table", args.from_table, "--target", args.target]
    if args.task:
        words += ["--task", args.task]
    if args.out:
        words += ["--out", args.out]
    return words


def add_parser(sub) -> None:
    p = sub.add_parser(
        "scaffold",
        help="write a release for a table: schema, task, split, starter model and gates inferred from the data",
    )
    p.add_argument("name", help="the release's name (lower-case letters, digits, underscores)")
    p.add_argument("--from-table", required=True, metavar="PATH", help="a CSV, Parquet or JSONL file in the project")
    p.add_argument("--target", required=True, metavar="COLUMN", help="the column the model predicts")
    p.add_argument("--task", choices=TASKS, help="instead of the task detected from the target's values")
    p.add_argument(
        "--out",
        metavar="PATH",
        help="the file to write (default: releases/NAME.yaml at the project root; a defs.yaml is written as a "
        "dg ReleaseComponent, its paths relative to its folder)",
    )
    p.set_defaults(fn=cmd_scaffold)
