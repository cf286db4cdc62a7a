"""A dataset's reference profile: a small JSON summary of its rows, enough to test every feature for drift later.

Written beside every split (``profile.json``) and carried in the release unit, so the next candidate's drift gate
(``promotion/drift.py``) compares against the champion's data without its rows; the live drift report
(``rollout/live_drift.py``) extracts per-row features the same way (:func:`row_features`).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

from release_assets.datasets.schemas import SLICE_FIELDS

QUANTILES = 20
SAMPLE_CAP = 2000
TOP_TOKENS = 500
VOCAB_CAP = 20000
JS_TOKENS = 100
INK_LEVEL = 4  # of 16: a pixel above a quarter intensity is ink
_TOKEN = re.compile(r"[a-z0-9']+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def image_stats(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image (one row of 64 intensities 0..16 each): mean intensity scaled to 0..1, and the share of ink."""
    return pixels.mean(axis=1) / 16, (pixels > INK_LEVEL).mean(axis=1)


def row_features(row: dict[str, Any], categorical: tuple[str, ...] = SLICE_FIELDS) -> dict[str, Any]:
    """One row's per-row features, named as the drift gate (``promotion/drift.py``) names them: what a row-by-row
    drift test (``rollout/live_drift.py``) compares, extracted exactly as :func:`build_profile` extracts them.
    The profile-level text features (``text.oov_rate``, ``text.tokens``) are distances between whole samples and
    have no per-row value."""
    label = row.get("label")
    out: dict[str, Any] = {f: str(row[f]) for f in categorical if f in row}
    if label is not None:
        out["label"] = float(label) if _is_number(label) else str(label)
    features = row.get("features") or []
    if isinstance(features, dict):  # a table's columns by name: numbers are numeric features, the rest categories
        for name, x in features.items():
            if x is not None:
                out[f"features.{name}"] = float(x) if _is_number(x) else str(x)
    else:
        for i, x in enumerate(features):
            out[f"features[{i}]"] = float(x)
    if "text" in row:
        out["text.length"] = float(len(tokens(row["text"])))
    if "pixels" in row:
        mean, ink = image_stats(np.asarray([row["pixels"]], dtype=float))
        out["image.mean_intensity"], out["image.ink_ratio"] = float(mean[0]), float(ink[0])
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numeric(values: list[float]) -> dict[str, Any]:
    v = np.sort(np.asarray(values, dtype=float))
    # Evenly spaced order statistics keep the shape of the distribution when the sample is capped.
    sample = v if len(v) <= SAMPLE_CAP else v[np.linspace(0, len(v) - 1, SAMPLE_CAP).round().astype(int)]
    return {
        "n": len(v),
        "mean": float(v.mean()) if len(v) else None,
        "std": float(v.std()) if len(v) else None,
        "quantiles": np.quantile(v, np.linspace(0, 1, QUANTILES + 1)).tolist() if len(v) else [],
        "sample": sample.tolist(),
    }


def token_js(a: dict[str, int], b: dict[str, int]) -> float:
    """Jensen-Shannon distance (base 2, 0..1) over the top tokens of either side plus an "everything else" bucket.

    Only the most frequent tokens: over hundreds of rare tokens the distance measures sampling noise.
    """
    top = sorted({t for t, _ in Counter(a).most_common(JS_TOKENS)} | {t for t, _ in Counter(b).most_common(JS_TOKENS)})
    p = np.array([a.get(t, 0) for t in top] + [sum(a.values())], dtype=float)
    q = np.array([b.get(t, 0) for t in top] + [sum(b.values())], dtype=float)
    p[-1] -= p[:-1].sum()
    q[-1] -= q[:-1].sum()
    from scipy.spatial.distance import jensenshannon  # scipy costs ~1 s to import: only when a profile is compared

    return float(jensenshannon(p, q, base=2)) if p.sum() and q.sum() else 1.0


def _text(texts: list[str]) -> dict[str, Any]:
    toks = [tokens(t) for t in texts]
    counts = Counter(t for ts in toks for t in ts)
    # The reference's two halves against each other: how far apart samples are without any drift. Drift is
    # measured above that noise floor (half-size samples are noisier, so the floor errs on the side of calm).
    even, odd = Counter(t for ts in toks[::2] for t in ts), Counter(t for ts in toks[1::2] for t in ts)
    n_odd = sum(odd.values())
    return {
        "length": _numeric([len(ts) for ts in toks]),
        "total_tokens": sum(counts.values()),
        "tokens": dict(counts.most_common(TOP_TOKENS)),
        "vocab": dict(counts.most_common(VOCAB_CAP)),
        "oov_baseline": sum(n for t, n in odd.items() if t not in even) / n_odd if n_odd else 0.0,
        "token_js_baseline": token_js(dict(even), dict(odd)) if n_odd else 0.0,
    }


def build_profile(rows: list[dict[str, Any]], categorical: tuple[str, ...] = SLICE_FIELDS) -> dict[str, Any]:
    """A JSON-serialisable summary of ``rows``: enough to test every feature for drift later."""
    numeric_target = bool(rows) and _is_number(rows[0].get("label"))  # a regression target: a distribution
    profile: dict[str, Any] = {
        "rows": len(rows),
        "labels": {} if numeric_target else dict(Counter(str(r["label"]) for r in rows if "label" in r)),
        "categorical": {f: dict(Counter(str(r[f]) for r in rows)) for f in categorical if rows and f in rows[0]},
        "numeric": {"label": _numeric([float(r["label"]) for r in rows])} if numeric_target else {},
    }
    if rows and isinstance(rows[0].get("features"), dict):
        per_row = [row_features({"features": r["features"]}, ()) for r in rows]
        names = sorted({name for feats in per_row for name in feats})
        for name in names:
            values = [feats[name] for feats in per_row if name in feats]
            if values and all(isinstance(v, float) for v in values):
                profile["numeric"][name] = _numeric(values)
            else:
                profile["categorical"][name] = dict(Counter(str(v) for v in values))
    elif rows and "features" in rows[0]:
        cols = np.asarray([r["features"] for r in rows], dtype=float).T
        profile["numeric"] |= {f"features[{i}]": _numeric(col.tolist()) for i, col in enumerate(cols)}
    if rows and "text" in rows[0]:
        profile["text"] = _text([r["text"] for r in rows])
    if rows and "pixels" in rows[0]:
        mean, ink = image_stats(np.asarray([r["pixels"] for r in rows], dtype=float))
        profile["images"] = {"mean_intensity": _numeric(mean.tolist()), "ink_ratio": _numeric(ink.tolist())}
    return profile
