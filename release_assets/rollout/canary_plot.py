"""The canary's KPI series, from what the ledger recorded: every analysis a move carries (advance, breach, rollback,
promotion) since the canary started, with each KPI's budget as the limit the canary had to stay under at that
point. Plain Python: the rollout asset's metadata (``rollout/sensors.py``) draws it with ``plots/canary.py``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from release_assets.manifest.rollout import Budget, RolloutSpec
from release_assets.plots.canary import kpi_series
from release_assets.plots.render import Plot
from release_assets.rollout.analysis import KPIS

MOVES = {  # ledger action -> the decision drawn (an ``approved`` beside ``promoted`` carries the same analysis)
    "canary_advanced": "advance",
    "canary_breach": "breach",
    "rolled_back": "rolled_back",
    "promoted": "promote",
    "canary_aborted": "aborted",
}


def limit(budget: Budget | None, champion: float | None) -> float | None:
    """The highest value the canary could have had without breaching: a KPI breaches only when it exceeds every
    bound its budget gives (``analysis.over_budget``), so the limit is the largest of them."""
    if budget is None:
        return None
    bounds = [budget.max] if budget.max is not None else []
    if champion is not None:
        bounds += [champion + budget.max_increase] if budget.max_increase is not None else []
        bounds += [champion * budget.max_ratio] if budget.max_ratio is not None and champion > 0 else []
    return max(bounds) if bounds else None


def _label(action: str, analysis: dict[str, Any] | None) -> str:
    if action == "canary_started":
        return "start"
    if action == "canary_advanced" and analysis:
        return f"\u2192{analysis.get('next_percent')}%"
    return {"canary_breach": "breach", "rolled_back": "rollback", "promoted": "promoted"}.get(action, "aborted")


def canary_points(events: list[dict[str, Any]], spec: RolloutSpec) -> list[dict[str, Any]]:
    """The latest canary's start and every recorded move after it, in order, as :func:`kpi_series` draws them."""
    starts = [i for i, e in enumerate(events) if e.get("action") == "canary_started"]
    if not starts:
        return []
    first = events[starts[-1]]
    t0 = datetime.fromisoformat(first["time"])
    percent = (first.get("rollout") or {}).get("steps", spec.steps)[0]
    points = [{"decision": "started", "label": "start", "when": f"+0m\n{percent}%", "kpis": {}}]
    for e in events[starts[-1] + 1 :]:
        action = e.get("action", "")
        if action not in MOVES or (action == "rolled_back" and e.get("scope") != "canary"):
            continue
        analysis = e.get("analysis")
        minutes = (datetime.fromisoformat(e["time"]) - t0).total_seconds() / 60
        kpis = {}
        for k in (analysis or {}).get("kpis", []):
            budget = getattr(spec.budgets, k["name"], None)
            kpis[k["name"]] = {
                "canary": k.get("canary"),
                "champion": k.get("champion"),
                "limit": limit(budget, k.get("champion")),
            }
        at = f"{analysis['percent']}%" if analysis else ""
        points.append(
            {
                "decision": MOVES[action],
                "label": _label(action, analysis),
                "when": f"+{minutes:.0f}m\n{at}",
                "kpis": kpis,
            }
        )
        if action in ("rolled_back", "promoted", "canary_aborted"):
            break
    return points


def canary_plot(release: str, events: list[dict[str, Any]], spec: RolloutSpec) -> Plot | None:
    """The latest canary's KPI series (the budgeted KPIs, else every one recorded); None before any move."""
    points = canary_points(events, spec)
    if len(points) < 2:
        return None
    budgeted = [k for k in KPIS if getattr(spec.budgets, k) is not None]
    version = [e for e in events if e.get("action") == "canary_started"][-1].get("to_version")
    return kpi_series(points, budgeted or list(KPIS), f"{release} canary {version}: KPIs at each recorded analysis")
