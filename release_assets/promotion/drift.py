"""Input drift: is the data a candidate is evaluated on still like the data the champion was released with?

A reference profile is stored with each release (small, JSON) so the next release compares against it without
the old rows. A feature counts as drifted only when the difference is both statistically significant (p below
``alpha``) and large enough to matter (an effect-size floor): with thousands of rows a test alone flags
differences nobody cares about, and an effect size alone flags sampling noise on small sets.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from release_assets.datasets.schemas import SLICE_FIELDS
from release_assets.verdict import Status, Verdict

QUANTILES = 20
SAMPLE_CAP = 2000
TOP_TOKENS = 500
VOCAB_CAP = 20000
JS_TOKENS = 100
INK_LEVEL = 4  # of 16: a pixel above a quarter intensity is ink
DEFAULT_THRESHOLDS: dict[str, float] = {
    "alpha": 0.01,  # KS / chi-square p-value below which a difference is significant
    "ks_min_statistic": 0.1,  # KS D below this is too small to matter, however significant
    "min_tvd": 0.05,  # total variation distance floor for categorical shifts
    "oov_increase": 0.05,  # out-of-vocabulary rate above the reference's own held-out rate
    "token_js_increase": 0.05,  # Jensen-Shannon distance between token distributions above the reference's own
}
_TOKEN = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    test: str
    statistic: float
    p_value: float | None  # None for distances (JS, OOV), whose statistic is compared to the threshold directly
    threshold: float
    drifted: bool

    def row(self) -> dict[str, Any]:
        d = asdict(self)
        d["p_value_or_psi"] = d.pop("p_value") if self.p_value is not None else self.statistic
        return d


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def image_stats(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image (one row of 64 intensities 0..16 each): mean intensity scaled to 0..1, and the share of ink."""
    return pixels.mean(axis=1) / 16, (pixels > INK_LEVEL).mean(axis=1)


def row_features(row: dict[str, Any], categorical: tuple[str, ...] = SLICE_FIELDS) -> dict[str, Any]:
    """One row's per-row features, named as :func:`compare_profiles` names them: what a row-by-row drift test
    (``evaluation/live_drift.py``) compares, extracted exactly as :func:`build_profile` extracts them. The
    profile-level text features (``text.oov_rate``, ``text.tokens``) are distances between whole samples and have
    no per-row value."""
    out: dict[str, Any] = {f: str(row[f]) for f in ("label", *categorical) if f in row}
    for i, x in enumerate(row.get("features") or []):
        out[f"features[{i}]"] = float(x)
    if "text" in row:
        out["text.length"] = float(len(tokens(row["text"])))
    if "pixels" in row:
        mean, ink = image_stats(np.asarray([row["pixels"]], dtype=float))
        out["image.mean_intensity"], out["image.ink_ratio"] = float(mean[0]), float(ink[0])
    return out


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


def _token_js(a: dict[str, int], b: dict[str, int]) -> float:
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
        "token_js_baseline": _token_js(dict(even), dict(odd)) if n_odd else 0.0,
    }


def build_profile(rows: list[dict[str, Any]], categorical: tuple[str, ...] = SLICE_FIELDS) -> dict[str, Any]:
    """A JSON-serialisable summary of ``rows``: enough to test every feature for drift later."""
    profile: dict[str, Any] = {
        "rows": len(rows),
        "labels": dict(Counter(str(r["label"]) for r in rows if "label" in r)),
        "categorical": {f: dict(Counter(str(r[f]) for r in rows)) for f in categorical if rows and f in rows[0]},
        "numeric": {},
    }
    if rows and "features" in rows[0]:
        cols = np.asarray([r["features"] for r in rows], dtype=float).T
        profile["numeric"] = {f"features[{i}]": _numeric(col.tolist()) for i, col in enumerate(cols)}
    if rows and "text" in rows[0]:
        profile["text"] = _text([r["text"] for r in rows])
    if rows and "pixels" in rows[0]:
        mean, ink = image_stats(np.asarray([r["pixels"] for r in rows], dtype=float))
        profile["images"] = {"mean_intensity": _numeric(mean.tolist()), "ink_ratio": _numeric(ink.tolist())}
    return profile


def _ks(name: str, ref: dict[str, Any], cur: dict[str, Any], th: dict[str, float]) -> FeatureDrift:
    if not ref["sample"] or not cur["sample"]:
        return FeatureDrift(name, "missing", float("nan"), None, 0.0, True)
    from scipy import stats

    res = stats.ks_2samp(ref["sample"], cur["sample"])
    drifted = res.pvalue < th["alpha"] and res.statistic >= th["ks_min_statistic"]
    return FeatureDrift(name, "ks", float(res.statistic), float(res.pvalue), th["alpha"], bool(drifted))


def _chi2(name: str, ref: dict[str, int], cur: dict[str, int], th: dict[str, float]) -> FeatureDrift:
    # Union of categories, zero where a side lacks one: a category that appears or vanishes is drift, not an error.
    cats = sorted(set(ref) | set(cur))
    table = np.array([[ref.get(c, 0) for c in cats], [cur.get(c, 0) for c in cats]], dtype=float)
    if table.sum(axis=1).min() == 0:
        return FeatureDrift(name, "missing", float("nan"), None, 0.0, True)
    if len(cats) < 2:
        return FeatureDrift(name, "chi_square", 0.0, 1.0, th["alpha"], False)
    from scipy import stats

    res = stats.chi2_contingency(table, correction=False)
    p_ref, p_cur = table / table.sum(axis=1, keepdims=True)
    tvd = 0.5 * np.abs(p_ref - p_cur).sum()
    drifted = res.pvalue < th["alpha"] and tvd >= th["min_tvd"]
    return FeatureDrift(name, "chi_square", float(res.statistic), float(res.pvalue), th["alpha"], bool(drifted))


def _text_drift(ref: dict[str, Any], cur: dict[str, Any], th: dict[str, float]) -> list[FeatureDrift]:
    out = [_ks("text.length", ref["length"], cur["length"], th)]
    total = max(cur["total_tokens"], 1)
    oov = sum(n for t, n in cur["vocab"].items() if t not in ref["vocab"]) / total
    increase = oov - ref["oov_baseline"]
    js = _token_js(ref["vocab"], cur["vocab"]) - ref["token_js_baseline"]
    oov_max, js_max = th["oov_increase"], th["token_js_increase"]
    out.append(FeatureDrift("text.oov_rate", "oov_rate_increase", increase, None, oov_max, increase > oov_max))
    out.append(FeatureDrift("text.tokens", "jensen_shannon_increase", js, None, js_max, js > js_max))
    return out


def compare_profiles(
    reference: dict[str, Any], current: dict[str, Any], thresholds: dict[str, float] | None = None
) -> list[FeatureDrift]:
    """One ``FeatureDrift`` per feature the reference profiles; a feature the current data lacks has drifted."""
    th = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    out = [_chi2("label", reference["labels"], current["labels"], th)] if reference.get("labels") else []
    for f, ref in reference.get("categorical", {}).items():
        out.append(_chi2(f, ref, current.get("categorical", {}).get(f, {}), th))
    for f, ref in reference.get("numeric", {}).items():
        out.append(_ks(f, ref, current.get("numeric", {}).get(f, {"sample": []}), th))
    if "text" in reference:
        if "text" in current:
            out.extend(_text_drift(reference["text"], current["text"], th))
        else:
            out.append(FeatureDrift("text", "missing", float("nan"), None, 0.0, True))
    for f, ref in reference.get("images", {}).items():
        out.append(_ks(f"image.{f}", ref, current.get("images", {}).get(f, {"sample": []}), th))
    return out


def _explain(d: FeatureDrift) -> str:
    if d.test == "missing":
        return f"{d.feature} (missing from the current data)"
    if d.p_value is not None:
        return f"{d.feature} ({d.test} statistic {d.statistic:.3g}, p={d.p_value:.2g} < {d.threshold:g})"
    return f"{d.feature} ({d.test} {d.statistic:.3g} > {d.threshold:g})"


def drift_verdict(
    member: str,
    reference_profile: dict[str, Any] | None,
    current_profile: dict[str, Any],
    thresholds: dict[str, float] | None = None,
    *,
    gate: str = "drift",
    severity: Literal["block", "warn"] = "block",
) -> Verdict:
    """Fails when any feature drifted from the champion's reference profile; inconclusive without a champion."""
    th = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    bounds: dict[str, float | None] = {"min": None, "max": 0.0, **th}
    if reference_profile is None:
        reason = "no reference profile (no champion) to compare the data with"
        return Verdict(member, gate, "inconclusive", reason, None, bounds, severity)
    drifts = compare_profiles(reference_profile, current_profile, th)
    bad = [d for d in drifts if d.drifted]
    if bad:
        listed = "; ".join(_explain(d) for d in bad)
        reason = f"{len(bad)} of {len(drifts)} features drifted from the champion's data: {listed}"
    else:
        reason = f"none of {len(drifts)} features drifted from the champion's data (alpha {th['alpha']:g})"
    status: Status = "failed" if bad else "passed"
    return Verdict(member, gate, status, reason, float(len(bad)), bounds, severity, examples=[d.row() for d in drifts])
