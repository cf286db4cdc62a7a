"""Regression triage as waterfalls: from the champion's value of a metric, each changed member's share of the
change (Shapley values, ``evaluation/triage_attribution.py``), the interaction left over, to the candidate's."""

from __future__ import annotations

from typing import Any

import numpy as np

from release_assets.plots.render import BAD, CHAMPION, GOOD, LIMIT, MUTED, Plot, draw, shorten

TITLES = {"waterfall": "What moved the metric"}
MAX_METRICS = 4


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def waterfall(metric: dict[str, Any], baseline: str, candidate: str) -> Plot | None:
    """``metric``: one of a triage's metrics (``metric``, ``baseline``, ``candidate``, ``shares``, ``interaction``)."""
    shares = [(str(k), float(v)) for k, v in metric["shares"].items()]
    steps = [*shares, ("interaction", float(metric.get("interaction") or 0.0))]
    start, end = float(metric["baseline"]), float(metric["candidate"])

    def paint(fig: Any) -> None:
        ax = fig.add_subplot()
        labels = [
            f"{shorten(baseline, 10)}\n(baseline)",
            *(shorten(k, 14) for k, _ in steps),
            f"{shorten(candidate, 10)}\n(candidate)",
        ]
        level = start
        lows, heights, colours = [0.0], [start], [CHAMPION]
        for name, delta in steps:
            lows.append(min(level, level + delta))
            heights.append(abs(delta))
            colours.append(MUTED if name == "interaction" else GOOD if delta >= 0 else BAD)
            level += delta
        lows.append(0.0)
        heights.append(end)
        colours.append(CHAMPION)
        x = np.arange(len(labels))
        ax.bar(x, heights, bottom=lows, color=colours, width=0.6)
        for i, (_, delta) in enumerate(steps, start=1):
            ax.text(i, lows[i] + heights[i], f"{delta:+.3f}", ha="center", va="bottom", fontsize=6)
        ax.text(0, start, f"{start:.3f}", ha="center", va="bottom", fontsize=6)
        ax.text(len(labels) - 1, end, f"{end:.3f}", ha="center", va="bottom", fontsize=6)
        level = start
        for i, (_, delta) in enumerate(steps, start=1):  # connectors between the bars
            ax.plot([i - 1.3, i + 0.3], [level, level], color=LIMIT, linewidth=0.5)
            level += delta
        top = max(start, end, *(lo + h for lo, h in zip(lows, heights, strict=True)))
        bottom = min([*lows[1:-1], start, end])
        pad = (top - bottom) * 0.25 or 0.05
        ax.set_ylim(max(0.0, bottom - pad) if bottom >= 0 else bottom - pad, top + pad)
        ax.set_xticks(x, labels, fontsize=6)
        ax.set_ylabel(metric["metric"])
        ax.set_title(f"{metric['metric']}: {end - start:+.3f}, shared between what changed")
        fig.tight_layout()

    return draw(f"waterfall_{_slug(metric['metric'])}", f"What moved {metric['metric']}", paint)


def waterfalls(triage: dict[str, Any]) -> list[Plot]:
    """The metrics that moved (largest change first, at most MAX_METRICS) of a triage (``triage.json``)."""
    moved = [m for m in triage.get("metrics", []) if m.get("change") or any((m.get("shares") or {}).values())]
    moved.sort(key=lambda m: (-abs(float(m["candidate"]) - float(m["baseline"])), m["metric"]))
    baseline, candidate = str(triage.get("baseline", "baseline")), str(triage.get("candidate", "candidate"))
    return [p for m in moved[:MAX_METRICS] if (p := waterfall(m, baseline, candidate)) is not None]
