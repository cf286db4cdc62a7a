"""Plots of the gates that read data: the drifted features' distributions, champion against candidate (from the
two reference profiles, ``datasets/profile.py``'s JSON), the worst slices against the overall accuracy, and any
gates' observed values against their bounds (the shadow gates)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from release_assets.plots.render import BAD, CANDIDATE, CHAMPION, LIMIT, Plot, draw, shorten

TITLES = {
    "drift": "Drifted features: champion vs candidate",
    "slice_gap": "Worst slices against the overall accuracy",
    "gates": "Gates: observed against bounds",
    "shadow_gates": "Shadow gates: observed against bounds",
}
MAX_FEATURES = 6
MAX_CATEGORIES = 8
MAX_SLICES = 10
HIST_BINS = 20


def _shares(counts: dict[str, float]) -> dict[str, float]:
    total = float(sum(counts.values()))
    return {k: v / total for k, v in counts.items()} if total else {}


def drift_series(reference: dict[str, Any], current: dict[str, Any], feature: str) -> dict[str, Any] | None:
    """What to draw of one feature the drift gate names (``promotion/drift.py``): ``{"numeric": (champion sample,
    candidate sample)}`` or ``{"shares": (champion shares, candidate shares)}``; None when a side has nothing."""
    ref_text, cur_text = reference.get("text") or {}, current.get("text") or {}
    if feature == "label":
        pair: tuple[Any, Any] = (reference.get("labels") or {}, current.get("labels") or {})
        kind = "counts"
    elif feature in reference.get("categorical", {}):
        pair, kind = (reference["categorical"][feature], current.get("categorical", {}).get(feature) or {}), "counts"
    elif feature in reference.get("numeric", {}):
        cur = current.get("numeric", {}).get(feature) or {}
        pair, kind = (reference["numeric"][feature].get("sample") or [], cur.get("sample") or []), "numeric"
    elif feature.startswith("image."):
        name = feature.partition(".")[2]
        ref, cur = reference.get("images", {}).get(name) or {}, current.get("images", {}).get(name) or {}
        pair, kind = (ref.get("sample") or [], cur.get("sample") or []), "numeric"
    elif feature == "text.length":
        pair = ((ref_text.get("length") or {}).get("sample") or [], (cur_text.get("length") or {}).get("sample") or [])
        kind = "numeric"
    elif feature == "text.tokens":
        pair, kind = (ref_text.get("tokens") or {}, cur_text.get("tokens") or {}), "counts"
    elif feature == "text.oov_rate" and ref_text and cur_text:
        vocab = ref_text.get("vocab") or {}
        new = sum(n for t, n in (cur_text.get("vocab") or {}).items() if t not in vocab)
        rate = new / max(cur_text.get("total_tokens") or 0, 1)
        base = float(ref_text.get("oov_baseline") or 0.0)
        pair, kind = (
            ({"known words": 1 - base, "new words": base}, {"known words": 1 - rate, "new words": rate}),
            "counts",
        )
    else:
        return None
    if not pair[0] or not pair[1]:
        return None
    if kind == "numeric":
        return {"numeric": (list(map(float, pair[0])), list(map(float, pair[1])))}
    return {"shares": (_shares(pair[0]), _shares(pair[1]))}


def _numeric_panel(ax: Any, champion: Sequence[float], candidate: Sequence[float]) -> None:
    both = np.asarray([*champion, *candidate], dtype=float)
    edges = np.histogram_bin_edges(both, bins=HIST_BINS)
    for sample, colour, label in ((champion, CHAMPION, "champion"), (candidate, CANDIDATE, "candidate")):
        ax.hist(
            np.asarray(sample, dtype=float),
            bins=edges,
            density=True,
            histtype="step",
            color=colour,
            linewidth=1.4,
            label=label,
        )
    ax.set_yticks([])


def _shares_panel(ax: Any, champion: dict[str, float], candidate: dict[str, float]) -> None:
    names = sorted(set(champion) | set(candidate), key=lambda k: (-max(champion.get(k, 0), candidate.get(k, 0)), k))
    names = names[:MAX_CATEGORIES]
    x = np.arange(len(names))
    ax.bar(x - 0.2, [champion.get(k, 0.0) for k in names], width=0.4, color=CHAMPION, label="champion")
    ax.bar(x + 0.2, [candidate.get(k, 0.0) for k in names], width=0.4, color=CANDIDATE, label="candidate")
    ax.set_xticks(x, [shorten(k, 10) for k in names], rotation=30, ha="right", fontsize=6)
    ax.set_ylabel("share", fontsize=6)


def drift(features: Sequence[dict[str, Any]]) -> Plot | None:
    """``features``: the drifted ones, each ``{"feature", "caption", "numeric" | "shares"}`` (see
    :func:`drift_series`); at most MAX_FEATURES are drawn, in the order given."""
    shown = [f for f in features if "numeric" in f or "shares" in f][:MAX_FEATURES]
    if not shown:
        return None
    columns = 1 if len(shown) == 1 else 2
    rows = math.ceil(len(shown) / columns)

    def paint(fig: Any) -> None:
        for i, f in enumerate(shown):
            ax = fig.add_subplot(rows, columns, i + 1)
            if "numeric" in f:
                _numeric_panel(ax, *f["numeric"])
            else:
                _shares_panel(ax, *f["shares"])
            ax.set_title(shorten(f["caption"], 44 if columns == 2 else 80), fontsize=7)
            ax.tick_params(labelsize=6)
            if i == 0:
                ax.legend(fontsize=6, loc="best")
        fig.suptitle(f"Drifted features ({len(features)}): champion's data vs this build's", fontsize=8)
        fig.tight_layout()

    return draw("drift", TITLES["drift"], paint, size=(5.0, 0.6 + 1.7 * rows))


def slice_gap(rows: Sequence[dict[str, Any]], overall: float, max_gap: float) -> Plot | None:
    """The slice gate's rows (``promotion/slices.py``: field, value, accuracy, n, gap, judged), worst judged first."""
    judged = [r for r in rows if r.get("judged")][:MAX_SLICES]
    if not judged:
        return None
    floor = overall - max_gap

    def paint(fig: Any) -> None:
        ax = fig.add_subplot()
        y = np.arange(len(judged))
        colours = [BAD if r["gap"] > max_gap else CANDIDATE for r in judged]
        ax.barh(y, [r["accuracy"] for r in judged], color=colours)
        ax.set_yticks(y, [f"{shorten(r['field'], 10)}={shorten(r['value'], 12)} (n={r['n']})" for r in judged])
        ax.invert_yaxis()
        ax.axvline(overall, color=LIMIT, linewidth=1.2, label=f"overall {overall:.3f}")
        ax.axvline(
            floor, color=BAD, linestyle="--", linewidth=1.2, label=f"allowed floor {floor:.3f} (gap {max_gap:g})"
        )
        ax.set_xlim(max(0.0, min(min(r["accuracy"] for r in judged), floor) - 0.05), 1.0)
        ax.set_xlabel("accuracy")
        ax.set_title(f"Worst {len(judged)} slices (of {len(rows)}) against the overall accuracy")
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.22), ncols=2, frameon=False)
        fig.tight_layout()

    return draw("slice_gap", TITLES["slice_gap"], paint, size=(5.0, max(2.6, 1.3 + 0.25 * len(judged))))


def gate_bars(rows: Sequence[dict[str, Any]], title: str, name: str = "gates") -> Plot | None:
    """One small panel per gate: its observed value as a bar and its bounds as lines (red bar: not passed).
    ``rows``: ``{"gate", "observed", "min", "max", "status"}``; gates with nothing observed are left out."""
    shown = [r for r in rows if r.get("observed") is not None and math.isfinite(float(r["observed"]))]
    if not shown:
        return None

    def paint(fig: Any) -> None:
        axes = fig.subplots(len(shown), 1, squeeze=False)[:, 0]
        for ax, r in zip(axes, shown, strict=True):
            value = float(r["observed"])
            bounds = [float(b) for b in (r.get("min"), r.get("max")) if b is not None]
            ax.barh([0], [value], color=CANDIDATE if r.get("status") == "passed" else BAD, height=0.6)
            for b, what in ((r.get("min"), "min"), (r.get("max"), "max")):
                if b is not None:
                    ax.axvline(float(b), color=LIMIT, linestyle="--", linewidth=1.2)
                    ax.annotate(f" {what} {float(b):g}", (float(b), 0.42), fontsize=6, ha="left")
            span = [0.0, value, *bounds]
            low, high = min(span), max(span)
            pad = (high - low) * 0.15 or 0.1
            ax.set_xlim(low - (pad if low < 0 else 0), high + pad)
            ax.set_yticks([0], [shorten(r["gate"], 24)], fontsize=6)
            ax.set_ylim(-0.5, 0.8)
            ax.tick_params(axis="x", labelsize=6)
            ax.text(value, -0.05, f" {value:.4g}", va="center", fontsize=6)
        fig.suptitle(title, fontsize=8)
        fig.tight_layout()

    return draw(name, TITLES.get(name, title), paint, size=(5.0, 0.5 + 0.55 * len(shown)))
