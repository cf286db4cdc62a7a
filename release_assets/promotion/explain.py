"""What a failing metric gate's reason adds beyond the number: where the number came from.

A failing ``invalid_rows`` names the first rows (file, line, field, error); a failing ``format_valid`` the most
common format errors; a latency gate how it was measured. The reason is what the CLI prints and the check shows.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from release_assets.datasets.quality import clip, invalid_rows_detail
from release_assets.promotion.policy import Verdict


def latency_context(metrics: dict[str, Any]) -> str:
    """How a latency figure was measured, so a held release shows whether the machine was busy at the time."""
    if not metrics.get("latency_load_corrected"):
        return " (least-disturbed of repeated rounds; no scheduler statistics on this machine)"
    share = metrics.get("cpu_wait_share")
    wall = metrics.get("wall_p95_ms")
    if share is None or wall is None:
        return ""
    return f" (service time, CPU queueing excluded; wall clock p95 {wall:.4g} ms, {share:.0%} of it waiting for a CPU)"


def _data_file(spec: Any, summary: dict[str, Any]) -> str:
    """The file a raw summary was read from, spelled as in the manifest (relative to the project) when it is that
    file: the summary holds the absolute path of whichever checkout built it."""
    source = str(summary.get("source", ""))
    path = getattr(spec, "path", None)
    if path and Path(source).parts[-len(Path(path).parts) :] == Path(path).parts:
        return path
    return source


def invalid_rows(spec: Any, verdict: Verdict, summary: dict[str, Any]) -> Verdict:
    assert verdict.observed is not None, "explained only when failed, so measured"
    text, table = invalid_rows_detail(_data_file(spec, summary), summary.get("examples", []), int(verdict.observed))
    if not text:
        return verdict
    # These rows replace the raw examples (which lack the file) as the check's `worst_examples` table, the one
    # the UI and the CLI's readers already look at for a failed gate.
    return replace(verdict, reason=f"{verdict.reason}: {text}", examples=table)


FORMAT_ERRORS_IN_REASON = 2
_FORMAT_MESSAGE = 160


def format_valid(spec: Any, verdict: Verdict, summary: dict[str, Any]) -> Verdict:
    """The most common format errors, counted by the golden evaluation: a handful of distinct messages (one broken
    template fails every case it renders) explain most invalid cases. A summary written before they were counted
    has no `format_errors`, and its reason stays as it was."""

    errors = summary.get("format_errors") or []
    if not errors:
        return verdict
    common = [
        f"{e['step']}: {clip(e['message'], _FORMAT_MESSAGE)} ×{e['count']}" for e in errors[:FORMAT_ERRORS_IN_REASON]
    ]
    more = "; ..." if len(errors) > FORMAT_ERRORS_IN_REASON else ""
    # `_table` puts these rows in their own check metadata table next to the worst cases (checks.check_result).
    table = [
        {"step": e["step"], "message": e["message"], "count": e["count"], "_table": "format_errors"} for e in errors
    ]
    return replace(
        verdict,
        reason=f"{verdict.reason} (most common: {'; '.join(common)}{more})",
        examples=[*verdict.examples, *table],
    )


# Metric gates whose failing reason names what failed, not only how much (by gate name, so any member kind).
