"""Live data drift: a window of served inputs (from the request spans) against a release's reference data, with
Evidently's ``DataDriftPreset``.

Rows on both sides have the shape of dataset rows (``{"text": ...}``, ``{"pixels": [...]}``,
``{"features": [...]}``) and become features through the offline drift gate's own extraction
(:func:`release_assets.datasets.profile.row_features`), so a feature means the same thing live and offline. The one
live-only feature is ``text.oov_rate`` per message: the share of its tokens missing from the reference vocabulary
(``rollout/live_text.py``). The verdict JSON is what the canary analysis reads (``read_live_drift``).

Pure: no Dagster; pandas and Evidently (about 5 s to import) are imported inside the functions that use them.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from release_assets.core.atomic import write_atomic
from release_assets.datasets.profile import row_features
from release_assets.release.store import check_release_name, check_version
from release_assets.rollout.live_text import oov_columns, oov_increase_test

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 500  # newest requests read from the traces
DEFAULT_MIN_ROWS = 30  # live values a feature needs before it is judged; below it the feature is inconclusive
DEFAULT_DRIFT_SHARE = 0.5  # Evidently's default: drifted when at least this share of the judged features drifted
# What a request can carry, by feature name; labels and slice fields (channel, register, length) never arrive live.
LIVE_FEATURES = ("text.length", "text.oov_rate", "image.mean_intensity", "image.ink_ratio")


def _observable(feature: str) -> bool:
    return feature in LIVE_FEATURES or feature.startswith("features[")


def request_rows(payload: Any) -> list[dict[str, Any]]:
    """A served request as dataset-shaped rows: the message, one row per attached digit image, the features.
    Anything malformed is left out (``serve`` refused such requests anyway)."""
    if not isinstance(payload, dict):
        return []
    rows: list[dict[str, Any]] = []
    if isinstance(payload.get("message"), str):
        rows.append({"text": payload["message"]})
    attachment = payload.get("attachment")
    digits = attachment.get("digits") if isinstance(attachment, dict) else None
    for image in digits if isinstance(digits, list) else []:
        if isinstance(image, list) and len(image) == 64 and all(isinstance(p, int | float) for p in image):
            rows.append({"pixels": image})
    features = payload.get("features")
    if isinstance(features, list) and all(isinstance(x, int | float) and not isinstance(x, bool) for x in features):
        rows.append({"features": features})
    return rows


def _newest_lines(trace_path: Path) -> Iterator[str]:
    """Lines of the trace file then of its rotated backups (``serve.jsonl.1`` is older), newest first."""
    files = [trace_path] + [trace_path.with_name(f"{trace_path.name}.{n}") for n in range(1, 100)]
    for path in files:
        if path.exists():
            yield from reversed(path.read_text(encoding="utf-8", errors="replace").splitlines())
        elif path is not trace_path:
            return


def live_inputs(
    trace_path: Path, release: str, version: str | None = None, limit: int = DEFAULT_WINDOW
) -> list[dict[str, Any]]:
    """Dataset-shaped rows from the newest ``limit`` request spans of ``release`` (of ``version`` when given),
    oldest first, each with ``request_id``, ``version`` and ``time``. Golden runs and shadow pairs are not live
    traffic and are skipped; so is an input the exporter clipped (``MAX_ATTRIBUTE_CHARS``: a photo attachment)
    into invalid JSON. The inputs were redacted on export: compare them with redacted reference text."""
    requests: list[list[dict[str, Any]]] = []
    unreadable = 0
    for line in _newest_lines(Path(trace_path)):
        if len(requests) >= limit:
            break
        try:
            span = json.loads(line)
            attrs = span.get("attributes") or {}
            meta = json.loads(attrs.get("metadata") or "{}")
            if not isinstance(meta, dict):
                raise TypeError("metadata is not an object")
        except (json.JSONDecodeError, AttributeError, TypeError):
            unreadable += 1  # a line cut by a crash mid-write, or not a span
            continue
        if span.get("name") != f"{release} request" or meta.get("release") != release:
            continue
        if meta.get("variant") == "golden" or (version is not None and meta.get("version") != version):
            continue
        try:
            payload = json.loads(attrs.get("input.value") or "null")
        except json.JSONDecodeError:
            unreadable += 1
            continue
        extra = {"request_id": meta.get("request_id"), "version": meta.get("version"), "time": span.get("start_time")}
        requests.append([{**row, **extra} for row in request_rows(payload)])
    if unreadable:
        log.warning("%s: %d span(s) or inputs unreadable, left out of the live window", trace_path, unreadable)
    return [row for rows in reversed(requests) for row in rows]


def _frame(rows: list[dict[str, Any]], oov: list[float | None]) -> Any:
    import pandas as pd

    return pd.DataFrame([{**row_features(r), "text.oov_rate": o} for r, o in zip(rows, oov, strict=True)])


def drift_report(
    reference_rows: list[dict[str, Any]],
    live_rows: list[dict[str, Any]],
    features: list[str] | None,
    out_dir: Path,
    *,
    drift_share: float = DEFAULT_DRIFT_SHARE,
    min_rows: int = DEFAULT_MIN_ROWS,
    method: str | None = None,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Evidently's drift preset over ``features`` (default: every live-observable feature the reference has),
    ``out_dir/report.html`` as evidence, and the verdict: ``drifted`` when the share of drifted features reaches
    ``drift_share`` (Evidently's own dataset-drift rule), ``clean`` below it, ``inconclusive`` when no feature has
    ``min_rows`` live values. ``method``/``threshold`` override Evidently's per-column choice (K-S p < 0.05 up to
    1000 reference rows, Wasserstein distance >= 0.1 above; chi-square or Jensen-Shannon for categories)."""
    import evidently
    import pandas as pd

    ref_oov, live_oov = oov_columns(reference_rows, live_rows)
    ref, cur = _frame(reference_rows, ref_oov), _frame(live_rows, live_oov)
    if features is None:
        features = [f for f in ref.columns if _observable(f) and ref[f].notna().any()]
    unjudged: dict[str, dict[str, Any]] = {}  # drifted None: not judged, and why
    for f in features:
        ref_n = int(ref[f].notna().sum()) if f in ref else 0
        live_n = int(cur[f].notna().sum()) if f in cur else 0
        if ref_n == 0 or live_n < min_rows:
            why = "no reference values" if ref_n == 0 else f"{live_n} live values < min_rows {min_rows}"
            unjudged[f] = {"feature": f, "test": why, "score": None, "threshold": None, "drifted": None}
    judged = [f for f in features if f not in unjudged]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    html = out_dir / "report.html"
    head: dict[str, Any] = {"live_rows": len(live_rows), "reference_rows": len(reference_rows), "min_rows": min_rows}
    head |= {"drift_share": drift_share, "evidently": evidently.__version__, "report": str(html)}
    if not judged:
        reason = f"inconclusive: no feature has {min_rows} live values ({len(live_rows)} live rows)"
        if not features:
            reason = "inconclusive: the reference data has no feature a live request carries"
        write_atomic(html, f"<!doctype html><title>live drift</title><p>{reason}</p>\n".encode())
        table = list(unjudged.values())
        return {"verdict": "inconclusive", "reason": reason, "drifted_share": None, "features": table, **head}

    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    categorical = [f for f in judged if pd.api.types.is_object_dtype(ref[f]) or pd.api.types.is_object_dtype(cur[f])]
    definition = DataDefinition(
        numerical_columns=[f for f in judged if f not in categorical], categorical_columns=categorical
    )
    per_column = {"text.oov_rate": oov_increase_test()} if method is None and "text.oov_rate" in judged else None
    preset = DataDriftPreset(
        columns=judged, drift_share=drift_share, method=method, threshold=threshold, per_column_method=per_column
    )
    with warnings.catch_warnings(action="ignore", category=RuntimeWarning):
        # The report's correlation heatmap divides by zero for a constant column; the drift tests are unaffected.
        snapshot = Report([preset], include_tests=True).run(
            Dataset.from_pandas(cur[judged], data_definition=definition),
            Dataset.from_pandas(ref[judged], data_definition=definition),
        )
    snapshot.save_html(str(html))
    result = _read_snapshot(snapshot.dict())
    table = [unjudged.get(f) or result["columns"][f] for f in features]
    bad = [r["feature"] for r in table if r["drifted"]]
    share = len(bad) / len(judged)
    verdict = "drifted" if result["dataset_drift"] else "clean"
    reason = f"{len(bad)} of {len(judged)} features drifted (share {share:.2f}, drifted at >= {drift_share:g})"
    if bad:
        reason += ": " + ", ".join(f"{r['feature']} ({r['test']} {r['score']:.3g})" for r in table if r["drifted"])
    return {"verdict": verdict, "reason": reason, "drifted_share": share, "features": table, **head}


def _read_snapshot(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Per column: the test (Evidently's method name), its score (a p-value when the name says so, else a
    distance), threshold and the column's drift test; and the dataset-level drift test."""
    columns: dict[str, dict[str, Any]] = {}
    for m in snapshot["metrics"]:
        config = m.get("config", {})
        if config.get("type", "").endswith(":ValueDrift"):
            method = str(config.get("method"))
            columns[config["column"]] = {
                "feature": config["column"],
                "test": method,
                "score": float(m["value"]),
                "score_is_p_value": "p_value" in method,
                "threshold": config.get("threshold"),
                "drifted": None,
            }
    dataset_drift = False
    for t in snapshot["tests"]:
        params = t.get("metric_config", {}).get("params", {})
        if params.get("type", "").endswith(":ValueDrift") and params.get("column") in columns:
            columns[params["column"]]["drifted"] = t["status"] == "FAIL"
        elif params.get("type", "").endswith(":DriftedColumnsCount"):
            dataset_drift = t["status"] == "FAIL"
    return {"columns": columns, "dataset_drift": dataset_drift}


def verdict_path(store_path: Path, release: str, version: str) -> Path:
    return Path(store_path) / "live_drift" / check_release_name(release) / f"{check_version(version)}.json"


def write_live_drift(store_path: Path, release: str, version: str, result: dict[str, Any]) -> Path:
    path = verdict_path(store_path, release, version)
    write_atomic(path, json.dumps(result, indent=1, sort_keys=True, default=str).encode())
    return path


def read_live_drift(store_path: Path, release: str, version: str) -> dict[str, Any] | None:
    """The latest live-drift verdict for ``version`` (``verdict``, ``reason``, ``features``...), None before the
    first; a file that is not JSON is an error naming it (files are written whole, so that is a hand edit)."""
    path = verdict_path(store_path, release, version)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno})") from None
