"""Markdown renderings a person reads in the Dagster UI: tables of metrics, confusions and examples."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 120 else text[:117] + "..."


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def confusion_markdown(labels: Sequence[str], matrix: Sequence[Sequence[int]]) -> str:
    return markdown_table(
        ["expected \\ predicted", *labels], [[lab, *row] for lab, row in zip(labels, matrix, strict=True)]
    )


def per_class_markdown(per_class: dict[str, dict[str, float]]) -> str:
    rows = [[k, v["precision"], v["recall"], v["f1"], v["support"]] for k, v in per_class.items()]
    return markdown_table(["class", "precision", "recall", "f1", "support"], rows)


def slices_markdown(slices: dict[str, dict[str, dict[str, float]]]) -> str:
    rows = [[f, v, s["accuracy"], s["n"]] for f, values in slices.items() for v, s in values.items()]
    return markdown_table(["slice", "value", "accuracy", "n"], rows)


def slice_errors_markdown(slices: dict[str, dict[str, dict[str, float]]]) -> str:
    """A regression model's slices: mean absolute error per slice value."""
    rows = [[f, v, s["mae"], s["n"]] for f, values in slices.items() for v, s in values.items()]
    return markdown_table(["slice", "value", "mae", "n"], rows)


def examples_markdown(examples: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    return markdown_table(list(columns), [[e.get(c, "") for c in columns] for e in examples])


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A fixed-width table for terminals."""
    cells = [[str(h) for h in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
