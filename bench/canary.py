"""`make bench-canary`: the canary figures of BENCHMARKS.md, measured in one run on 127.0.0.1 (~1.5 min).

A real uvicorn server with real flag files (flagd) and real /metrics; the versions are real published bundles,
answered by fake releases (bench/support/, which the tests use too) so a fault can be injected (the monitor's cost
does not depend on the model). Steady traffic of about 50 requests/s runs in a thread while the monitor ticks at
the sensor's interval (``MONITOR_INTERVAL_S``), as the Dagster daemon would, driven in this process.

- tick cost: the monitor's work per tick (scrape /metrics, window, analyse, ledger replay, flag check), median of
  the ticks of the healthy run plus 30 more on the step it advanced to (baking: read, judge, wait);
- breach to rollback: a canary whose every answer fails its schema, with the breaker off (the KPI path) and on
  (the breaker opens within a few requests, and the next tick rolls back).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from run import replace_section  # noqa: E402  (bench/ is not a package)

MARK_BEGIN, MARK_END = "<!-- canary: bench/canary.py -->", "<!-- /canary -->"
BAKE_S = 20.0


def _traffic(url: str, stop: threading.Event, rps: float = 50.0) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop.is_set():
            t0 = time.perf_counter()
            client.post("/v1/helpdesk/predict", json={"message": "Where is my order?", "user_id": str(uuid.uuid4())})
            time.sleep(max(0.0, 1 / rps - (time.perf_counter() - t0)))


def _scenario(root: Path, faulty: bool, breaker: bool) -> dict:
    from bench.support.bundles import publish_unit
    from bench.support.fakes import FakeRelease
    from bench.support.live_canary import SchemaBreaking, live_server
    from release_assets.manifest.rollout import RolloutSpec
    from release_assets.record.ledger import promote
    from release_assets.release.store import LocalReleaseStore
    from release_assets.rollout.canary import Rollout, start, tick
    from release_assets.rollout.metrics_source import MetricsEndpointSource
    from release_assets.rollout.sensors import MONITOR_INTERVAL_S
    from release_assets.serving.breaker import BreakerPolicy

    store = LocalReleaseStore(root)
    v1, v2 = publish_unit(store, "helpdesk", "one"), publish_unit(store, "helpdesk", "two")
    promote(store, "helpdesk", v1, "bench", "baseline")
    spec = RolloutSpec.model_validate(
        {
            "steps": [20, 50, 100],
            "bake_s": BAKE_S,
            "min_requests": 50,
            "budgets": {"error_rate": {"max_increase": 0.02}, "schema_failure_rate": {"max_increase": 0.02}},
        }
    )
    answers = {v1: FakeRelease(version=v1), v2: SchemaBreaking(version=v2) if faulty else FakeRelease(version=v2)}
    policy = BreakerPolicy(failure_rate=0.5, window=20, min_requests=10, cooldown_s=600) if breaker else None
    r = Rollout(store, "helpdesk", spec, root / "flags")
    with ExitStack() as stack:
        url = stack.enter_context(live_server(store, answers, policy))
        source = MetricsEndpointSource([f"{url}/metrics"])
        stop = threading.Event()
        sender = threading.Thread(target=_traffic, args=(url, stop), daemon=True)
        stack.callback(lambda: (stop.set(), sender.join(10)))
        start(r, v2, "bench", "canary bench", source=source)
        started = time.monotonic()
        sender.start()
        ticks, costs, action = 0, [], "none"
        deadline = started + BAKE_S + 6 * MONITOR_INTERVAL_S
        while time.monotonic() < deadline:
            time.sleep(MONITOR_INTERVAL_S)
            t0 = time.perf_counter()
            result = tick(r, source)
            costs.append((time.perf_counter() - t0) * 1000)
            ticks += 1
            action = result.action
            if action in ("rolled_back", "advanced", "promoted"):
                break
        ended = time.monotonic()
        # Many more ticks on a baking canary: what each tick costs when it only reads and waits.
        if action == "advanced":
            for _ in range(30):
                t0 = time.perf_counter()
                tick(r, source, now=datetime.now(UTC))
                costs.append((time.perf_counter() - t0) * 1000)
    return {
        "action": action,
        "ticks": ticks,
        "seconds": ended - started,
        "after_bake_s": ended - started - BAKE_S,
        "tick_ms": statistics.median(costs),
        "tick_ms_max": max(costs),
    }


def main() -> None:
    from release_assets.rollout.sensors import MONITOR_INTERVAL_S

    started = datetime.now(UTC).isoformat(timespec="seconds")
    results = {}
    for name, faulty, breaker in (("healthy", False, False), ("schema", True, False), ("schema_breaker", True, True)):
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = _scenario(Path(tmp), faulty, breaker)
            print(name, results[name], flush=True)
    h, s, b = results["healthy"], results["schema"], results["schema_breaker"]
    lines = [
        MARK_BEGIN,
        "## Canary (`make bench-canary`)",
        "",
        f"Measured {started} by `make bench-canary` (bench/canary.py): one server on 127.0.0.1 with real flag files "
        f"and /metrics, ~50 requests/s, the monitor ticking every {MONITOR_INTERVAL_S} s (the sensor's interval), "
        f"bake time {BAKE_S:g} s, rollback after 1 failed analysis.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| schema-breaking canary, breaker off: breach to rollback | {s['action']} after {s['ticks']} ticks, "
        f"{s['seconds']:.1f} s from start ({s['after_bake_s']:.1f} s after the bake time) |",
        f"| schema-breaking canary, breaker on: breach to rollback | {b['action']} after {b['ticks']} tick(s), "
        f"{b['seconds']:.1f} s (the breaker opens first, so it does not wait for the bake time) |",
        f"| healthy canary: first step judged | {h['action']} after {h['ticks']} ticks, {h['seconds']:.1f} s |",
        f"| monitor tick cost (scrape, window, analysis, ledger replay, flag check), median | {h['tick_ms']:.1f} ms "
        f"(max {h['tick_ms_max']:.1f} ms) |",
        MARK_END,
    ]
    replace_section(MARK_BEGIN, MARK_END, lines)


if __name__ == "__main__":
    main()
