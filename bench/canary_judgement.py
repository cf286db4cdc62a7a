"""`make bench-canary-judgement`: the statistical canary judgement against today's threshold budgets, on the same
seeded synthetic traffic (pure computation, ~2 min; no server).

The rollout is the shipped helpdesk manifest's (releases/helpdesk.yaml: steps, bake time, min_requests, budgets),
judged two ways through the same ``rollout.analysis.analyse`` the monitor calls:

- budgets: the manifest's section as it is (relative budgets, p99 from 100 answers a side, intent distance);
- statistics: the same section plus ``judgement: {budgets: off}`` (the defaults: every KPI tested, latency and
  errors critical, false-alarm rate 5% over the whole rollout).

Traffic (bench/support/canary_traffic.py) is ``RPS`` requests/s split by the step's percentage; the monitor looks
every ``MONITOR_INTERVAL_S`` (the sensor's interval); a step that has not decided within ``HORIZON_S`` counts as
undecided. Each seed's traffic per step is the same for both methods (a stream per seed and step, read from the
step's start), so the two columns differ only in how they judge. Per scenario: the share of rollouts rolled back
(for an equal canary: the false-alarm rate), promoted, undecided, and the median time from start to rollback.

``--print-only`` prints the section instead of writing it into BENCHMARKS.md.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from run import replace_section  # noqa: E402  (bench/ is not a package)

from bench.support.canary_traffic import Variant, windows  # noqa: E402
from release_assets.manifest.rollout import RolloutSpec  # noqa: E402
from release_assets.rollout.analysis import analyse  # noqa: E402
from release_assets.rollout.sensors import MONITOR_INTERVAL_S  # noqa: E402

MARK_BEGIN, MARK_END = "<!-- canary-judgement: bench/canary_judgement.py -->", "<!-- /canary-judgement -->"
SEEDS = 100
RPS = 20.0
HORIZON_S = 3600.0
BASE = Variant()
SCENARIOS = {
    "equal": BASE,
    "errors 1% -> 2.5%": Variant(error_rate=0.025),
    "errors 1% -> 4%": Variant(error_rate=0.04),
    "median latency x1.15": BASE.slower(1.15),
    "median latency x1.5": BASE.slower(1.5),
    "escalations 10% -> 13%": Variant(escalation_rate=0.13),
    "intents shifted 5 points": Variant(intent_shares=(0.35, 0.3, 0.2, 0.15)),
}


def specs() -> dict[str, RolloutSpec]:
    section = yaml.safe_load((ROOT / "releases" / "helpdesk.yaml").read_text())["rollout"]
    return {
        "budgets": RolloutSpec.model_validate(section),
        "statistics": RolloutSpec.model_validate({**section, "judgement": {"budgets": "off"}}),
    }


def ramp(seed: int, canary: Variant, spec: RolloutSpec) -> tuple[str, float]:
    """One canary's rollout as the monitor would judge it: (outcome, seconds from start)."""
    interval = float(MONITOR_INTERVAL_S)
    per_tick = round(RPS * interval)
    elapsed = 0.0
    for step, percent in enumerate(spec.steps):
        looks = int(HORIZON_S // interval)
        for i, (c, h) in enumerate(windows(seed * 10 + step, canary, BASE, percent, per_tick, looks), 1):
            elapsed += interval
            decision = analyse(c, h, spec, step, i * interval).decision
            if decision == "breach":
                return "rolled back", elapsed
            if decision == "promote":
                return "promoted", elapsed
            if decision == "advance":
                break
        else:
            return "undecided", elapsed
    raise AssertionError("a rollout's last step is 100: reaching it promotes")


def measure() -> dict[str, dict[str, dict[str, float | None]]]:
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for scenario, canary in SCENARIOS.items():
        out[scenario] = {}
        for method, spec in specs().items():
            runs = [ramp(seed, canary, spec) for seed in range(SEEDS)]
            rolled = [t for outcome, t in runs if outcome == "rolled back"]
            out[scenario][method] = {
                "rolled_back": len(rolled) / SEEDS,
                "promoted": sum(o == "promoted" for o, _ in runs) / SEEDS,
                "undecided": sum(o == "undecided" for o, _ in runs) / SEEDS,
                "median_rollback_s": statistics.median(rolled) if rolled else None,
            }
            print(scenario, method, out[scenario][method], flush=True)
    return out


def _cell(r: dict[str, float | None]) -> str:
    when = f", median {r['median_rollback_s'] / 60:.1f} min" if r["median_rollback_s"] is not None else ""
    undecided = f", {r['undecided']:.0%} undecided" if r["undecided"] else ""
    return f"{r['rolled_back']:.0%} rolled back{when}; {r['promoted']:.0%} promoted{undecided}"


def main() -> None:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    results = measure()
    spent = time.perf_counter() - t0
    spec = specs()["budgets"]
    lines = [
        MARK_BEGIN,
        "## Canary judgement: statistics against threshold budgets (`make bench-canary-judgement`)",
        "",
        f"Measured {started} by `make bench-canary-judgement` (bench/canary_judgement.py) in {spent:.0f} s: {SEEDS} "
        f"seeded rollouts per scenario of synthetic traffic (bench/support/canary_traffic.py: {RPS:g} requests/s, "
        f"champion 1% errors, 10% escalations, 20 ms median latency), helpdesk's rollout (steps {spec.steps}, bake "
        f"{spec.bake_s:g} s, min_requests {spec.min_requests}), the monitor looking every {MONITOR_INTERVAL_S} s, a "
        f"step undecided after {HORIZON_S / 60:g} min. Both methods see the same traffic. Budgets: the manifest's "
        "section as shipped; statistics: `judgement: {budgets: off}` (defaults: every KPI tested, latency and errors "
        "critical, false-alarm rate 5% per rollout). For an equal canary, rolled back is the false-alarm rate.",
        "",
        "| canary | threshold budgets | statistical judgement |",
        "|---|---|---|",
        *(f"| {s} | {_cell(r['budgets'])} | {_cell(r['statistics'])} |" for s, r in results.items()),
        MARK_END,
    ]
    if "--print-only" in sys.argv:
        print("\n".join(lines))
    else:
        replace_section(MARK_BEGIN, MARK_END, lines)


if __name__ == "__main__":
    main()
