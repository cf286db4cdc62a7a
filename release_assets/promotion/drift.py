"""Input drift: is the data a candidate is evaluated on still like the data the champion was released with?

A reference profile is stored with each release (small, JSON: ``datasets/profile.py``) so the next release
compares against it without the old rows. A feature counts as drifted only when the difference is both
statistically significant (p below ``alpha``) and large enough to matter (an effect-size floor): with thousands of
rows a test alone flags differences nobody cares about, and an effect size alone flags sampling noise on small sets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from release_assets.datasets.profile import token_js
from release_assets.verdict import Status, Verdict

DEFAULT_THRESHOLDS: dict[str, float] = {
    "alpha": 0.01,  # KS / chi-square p-value below which a difference is significant
    "ks_min_statistic": 0.1,  # KS D below this is too small to matter, however significant
    "min_tvd": 0.05,  # total variation distance floor for categorical shifts
    "oov_increase": 0.05,  # out-of-vocabulary rate above the reference's own held-out rate
    "token_js_increase": 0.05,  # Jensen-Shannon distance between token distributions above the reference's own
}


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
    js = token_js(ref["vocab"], cur["vocab"]) - ref["token_js_baseline"]
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


def explain_drift(d: FeatureDrift) -> str:
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
        listed = "; ".join(explain_drift(d) for d in bad)
        reason = f"{len(bad)} of {len(drifts)} features drifted from the champion's data: {listed}"
    else:
        reason = f"none of {len(drifts)} features drifted from the champion's data (alpha {th['alpha']:g})"
    status: Status = "failed" if bad else "passed"
    return Verdict(member, gate, status, reason, float(len(bad)), bounds, severity, examples=[d.row() for d in drifts])
