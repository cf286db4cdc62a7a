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
from release_assets.datasets.profile import build_profile, row_features
from release_assets.promotion.drift import compare_profiles, explain_drift
from release_assets.release.store import check_release_name, check_version
from release_assets.rollout.live_text import oov_columns

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 500  # newest requests read from the traces
DEFAULT_MIN_ROWS = 30  # live values a feature needs before it is judged; below it the feature is inconclusive


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


# Which part of a request each judged feature comes from: a part with fewer than ``min_rows`` live values is not
# judged (too little data is inconclusive, never clean).
_PARTS = {"text": "text", "image": "pixels", "features": "features"}


def _part(feature: str) -> str:
    return _PARTS[feature.split(".")[0].split("[")[0]]


def _observable_profile(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, int]]:
    """The drift gate's profile (``datasets/profile.build_profile``) of what a live request carries: message text,
    attached digit images and features, each profiled from the rows that have it (a release's reference rows mix
    its datasets; a request, a message and its images). Labels and slice fields never arrive live: left out."""
    profile: dict[str, Any] = {"labels": {}, "categorical": {}, "numeric": {}}
    counts = {}
    for part in ("text", "pixels", "features"):
        group = [{part: r[part]} for r in rows if r.get(part) is not None]
        counts[part] = len(group)
        if group:
            built = build_profile(group, categorical=())
            profile["categorical"] |= built["categorical"]
            profile["numeric"] |= built["numeric"]
            profile |= {k: built[k] for k in ("text", "images") if k in built}
    return profile, counts


def _without(profile: dict[str, Any], parts: set[str]) -> dict[str, Any]:
    """``profile`` without the features of ``parts`` (the parts live traffic did not bring enough of)."""
    out = {**profile}
    for key in ("categorical", "numeric"):
        out[key] = {f: v for f, v in profile[key].items() if _part(f) not in parts}
    if "pixels" in parts:
        out.pop("images", None)
    if "text" in parts:
        out.pop("text", None)
    return out


def drift_report(
    reference_rows: list[dict[str, Any]],
    live_rows: list[dict[str, Any]],
    out_dir: Path,
    *,
    min_rows: int = DEFAULT_MIN_ROWS,
    thresholds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Live inputs against a release's reference rows, judged by the offline drift gate's own tests and rules
    (``promotion/drift.compare_profiles``: K-S with an effect-size floor on numbers and image statistics,
    chi-square with a distance floor on categories, the increase of unknown words and of the token distribution's
    distance over the reference's own noise), so the canary and the gate cannot disagree about the same data:
    ``drifted`` when any judged feature drifted, ``clean`` when none did, ``inconclusive`` when no part of the
    requests (text, images, features) has ``min_rows`` live values. ``out_dir/report.html`` is Evidently's
    picture of the same per-row columns, as evidence beside the verdict; it does not decide."""
    ref_profile, _ = _observable_profile(reference_rows)
    live_profile, live_counts = _observable_profile(live_rows)
    thin = {part for part, n in live_counts.items() if n < min_rows}
    candidates = compare_profiles(ref_profile, {"labels": {}, "categorical": {}, "numeric": {}}, thresholds)
    unjudged = [
        {
            "feature": d.feature,
            "test": f"{live_counts[_part(d.feature)]} live values < min_rows {min_rows}",
            "score": None,
            "threshold": None,
            "drifted": None,
        }
        for d in candidates
        if _part(d.feature) in thin
    ]
    drifts = compare_profiles(_without(ref_profile, thin), live_profile, thresholds)
    judged = [
        {
            "feature": d.feature,
            "test": d.test,
            "score": d.p_value if d.p_value is not None else d.statistic,
            "score_is_p_value": d.p_value is not None,
            "threshold": d.threshold,
            "drifted": d.drifted,
        }
        for d in drifts
    ]
    table = judged + unjudged
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    html = out_dir / "report.html"
    head: dict[str, Any] = {"live_rows": len(live_rows), "reference_rows": len(reference_rows), "min_rows": min_rows}
    head |= {"method": "the drift gate's (promotion/drift.py)", "report": str(html)}
    if not judged:
        reason = f"inconclusive: no part of the requests has {min_rows} live values ({len(live_rows)} live rows)"
        if not candidates:
            reason = "inconclusive: the reference data has no feature a live request carries"
        write_atomic(html, f"<!doctype html><title>live drift</title><p>{reason}</p>\n".encode())
        return {"verdict": "inconclusive", "reason": reason, "drifted_share": None, "features": table, **head}
    bad = [d for d in drifts if d.drifted]
    share = len(bad) / len(drifts)
    verdict = "drifted" if bad else "clean"
    reason = f"{len(bad)} of {len(drifts)} features drifted from the reference data (the drift gate's rules)"
    if bad:
        reason += ": " + "; ".join(explain_drift(d) for d in bad)
    head["evidently"] = _evidently_report(reference_rows, live_rows, [d.feature for d in drifts], html)
    return {"verdict": verdict, "reason": reason, "drifted_share": share, "features": table, **head}


def _evidently_report(
    reference_rows: list[dict[str, Any]], live_rows: list[dict[str, Any]], features: list[str], html: Path
) -> str:
    """Evidently's data drift report over the per-row columns of ``features`` (the profile-level text features,
    ``text.tokens``, have no per-row value; ``text.oov_rate`` is scored per message), written to ``html``."""
    import evidently
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref_oov, live_oov = oov_columns(reference_rows, live_rows)
    ref, cur = _frame(reference_rows, ref_oov), _frame(live_rows, live_oov)
    columns = [f for f in features if f in ref and f in cur and ref[f].notna().any() and cur[f].notna().any()]
    if not columns:
        write_atomic(html, b"<!doctype html><title>live drift</title><p>no per-row column to draw</p>\n")
        return evidently.__version__
    categorical = [f for f in columns if pd.api.types.is_object_dtype(ref[f]) or pd.api.types.is_object_dtype(cur[f])]
    definition = DataDefinition(
        numerical_columns=[f for f in columns if f not in categorical], categorical_columns=categorical
    )
    with warnings.catch_warnings(action="ignore", category=RuntimeWarning):
        # The report's correlation heatmap divides by zero for a constant column.
        snapshot = Report([DataDriftPreset(columns=columns)]).run(
            Dataset.from_pandas(cur[columns], data_definition=definition),
            Dataset.from_pandas(ref[columns], data_definition=definition),
        )
    snapshot.save_html(str(html))
    return evidently.__version__


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
