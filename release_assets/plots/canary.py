"""The canary's KPIs over its ramp: canary against champion at each recorded analysis, each KPI's budget as the
limit the canary had to stay under, and where each decision (advance, breach, rollback, promotion) was taken."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from release_assets.plots.render import BAD, CANDIDATE, CHAMPION, GOOD, LIMIT, MUTED, Plot, draw

TITLES = {"canary_kpis": "Canary KPIs over the ramp"}
DECISION_COLOURS = {"advance": GOOD, "promote": GOOD, "breach": BAD, "rolled_back": BAD, "aborted": BAD}
MAX_PANELS = 6


def _finite(v: Any) -> float:
    return float(v) if v is not None and math.isfinite(float(v)) else math.nan


def kpi_series(points: Sequence[dict[str, Any]], kpis: Sequence[str], title: str) -> Plot | None:
    """``points``: the canary's recorded moves in order, each ``{"decision", "label", "when", "kpis": {name:
    {"canary", "champion", "limit"}}}`` (a start or an abort has no KPIs), drawn evenly spaced with ``when`` (time
    since the start, weight) under each; ``kpis``: the names to draw, one panel each."""
    names = [k for k in kpis if any(k in p.get("kpis", {}) for p in points)][:MAX_PANELS]
    if not names:
        return None
    x_all = list(range(len(points)))

    def paint(fig: Any) -> None:
        axes = fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
        for ax, name in zip(axes, names, strict=True):
            judged = [(i, p["kpis"][name]) for i, p in enumerate(points) if name in p.get("kpis", {})]
            x = [i for i, _ in judged]
            side = {s: [_finite(k.get(s)) for _, k in judged] for s in ("canary", "champion", "limit")}
            ax.plot(x, side["champion"], "o-", color=CHAMPION, markersize=3, linewidth=1.2, label="champion")
            ax.plot(x, side["canary"], "o-", color=CANDIDATE, markersize=3, linewidth=1.4, label="canary")
            if any(not math.isnan(v) for v in side["limit"]):
                ax.plot(x, side["limit"], "_--", color=LIMIT, markersize=8, linewidth=0.8, label="budget")
            for i, p in enumerate(points):
                ax.axvline(i, color=DECISION_COLOURS.get(p["decision"], MUTED), linewidth=0.8, alpha=0.6)
            ax.set_ylabel(name.replace("_", " "), fontsize=6)
            ax.tick_params(labelsize=6)
        for i, p in enumerate(points):
            colour = DECISION_COLOURS.get(p["decision"], MUTED)
            axes[0].annotate(
                p["label"],
                (i, 1.02),
                xycoords=("data", "axes fraction"),
                fontsize=6,
                ha="center",
                va="bottom",
                color=colour,
            )
        axes[-1].set_xticks(x_all, [p["when"] for p in points], fontsize=6)
        axes[-1].set_xlim(-0.5, len(points) - 0.5)
        axes[0].legend(fontsize=6, loc="best", ncols=3)
        fig.suptitle(title, fontsize=8)
        fig.tight_layout()

    return draw("canary_kpis", TITLES["canary_kpis"], paint, size=(5.0, 1.3 + 1.0 * len(names)))
