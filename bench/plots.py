"""`make bench-plots`: what drawing the plots of a helpdesk release costs, against the cold release it is part of.

Each pair is two cold releases of the full-size helpdesk release (fresh store, instance and MLflow; the order of
the two alternates pair by pair), each a whole process running the release job in process as
``bench/dagster_release.py`` does:

- **plots**: matplotlib installed; every drawing call of the run (``plots/*``'s ``draw``: the matplotlib import and
  its first-figure set-up included, as a cold run pays them) and every plot file written or embedded is timed
  from inside the run. After the run, in the same process, the plots a held build adds are drawn too and timed
  apart: a failed drift check for each split (every profiled feature drawn, as if all had drifted) and a failed
  slice gap for each model report.
- **no plots**: ``import matplotlib`` made to fail, as without the ``plots`` extra: nothing is drawn.

The figures are the drawing's share of the cold release (each run's own drawing time over its own wall time), and,
as a cross-check, the wall time difference between the two runs of each pair (noisy: two 80 s runs on a shared
2-core machine). Medians of the pairs. ``BENCH_RUNS`` pairs (default 3); ``BENCH_PLOTS_TINY=1`` uses the tests'
tiny model settings instead of the shipped ones.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

START = time.perf_counter()
ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
BEGIN, END = "<!-- plots: bench/plots.py -->", "<!-- /plots -->"
RELEASE = "helpdesk"


def child(plots_on: bool) -> None:
    """One cold release in this process; prints its figures as one JSON line."""
    if not plots_on:
        sys.modules["matplotlib"] = None  # type: ignore[assignment]  # as without the extra: import fails
    sys.path.insert(0, str(ROOT))
    from release_assets.plots import canary, chain, gates, model, render, triage

    spent = {"draw_s": 0.0, "draw_n": 0, "io_s": 0.0, "first_s": 0.0}

    def timed(function, key: str):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                took = time.perf_counter() - start
                spent[key] += took
                if key == "draw_s":
                    spent["first_s"] = spent["first_s"] or took  # matplotlib's import and first figure
                    spent["draw_n"] += 1

        return wrapper

    drawing = timed(render.draw, "draw_s")
    for module in (model, gates, chain, canary, triage):
        module.draw = drawing  # each module calls the name it imported
    for name in ("write", "read", "metadata", "append_links"):
        setattr(render, name, timed(getattr(render, name), "io_s"))

    from release_assets.cli.common import dagster_instance
    from release_assets.core.settings import get_settings
    from release_assets.definitions import build_defs, resources_for
    from release_assets.manifest import load_manifests

    settings = get_settings()
    manifests = [m for m in load_manifests(settings.releases_path) if m.name == RELEASE]
    defs = build_defs(manifests, settings.project_root, resources_for(settings))
    with dagster_instance(settings.project_root) as instance:
        quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
        run_start = time.perf_counter()
        result = defs.resolve_job_def("release_all").execute_in_process(
            instance=instance, raise_on_error=False, run_config=quiet
        )
        run_s = time.perf_counter() - run_start
    wall_s = time.perf_counter() - START
    in_run = dict(spent)
    held = _held_plots(settings.store_path, gates) if plots_on else {"held_s": 0.0, "held_n": 0}
    sizes = {
        f"{p.parent.parent.parent.name}/{p.name}": p.stat().st_size
        for p in sorted((settings.store_path / "artifacts" / RELEASE).glob("*/*/plots/*.png"))
    }
    print(json.dumps({"success": result.success, "wall_s": wall_s, "run_s": run_s, **in_run, **held, "sizes": sizes}))


def _held_plots(store: Path, gates) -> dict:
    """The plots a held build's failed checks add, drawn from this run's own artifacts: each split's drift plot
    with every profiled feature (as if all had drifted), each classifier report's worst slices."""
    from release_assets.promotion.drift import compare_profiles
    from release_assets.promotion.slices import slice_gap_verdict

    start, n = time.perf_counter(), 0
    for profile_path in sorted((store / "artifacts" / RELEASE).glob("*_split/*/profile.json")):
        profile = json.loads(profile_path.read_text())
        features = []
        for d in compare_profiles(profile, profile):
            series = gates.drift_series(profile, profile, d.feature)
            if series is not None:
                features.append({"feature": d.feature, "caption": d.feature, **series})
        n += gates.drift(features) is not None
    for report_path in sorted((store / "artifacts" / RELEASE).glob("*_report/*/report.json")):
        summary = json.loads(report_path.read_text())
        verdict = slice_gap_verdict("m", summary["metrics"].get("accuracy"), summary["slices"], max_gap=-1.0, min_n=1)
        n += gates.slice_gap(verdict.examples, summary["metrics"]["accuracy"], -1.0) is not None
    return {"held_s": time.perf_counter() - start, "held_n": n}


def main() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT))
    from run import fmt, machine, replace_section, run_json, stats, workspace

    from bench.support.project import TINY_GATES, TINY_PARAMS, edit_manifest

    tiny = os.environ.get("BENCH_PLOTS_TINY") == "1"
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = [os.getloadavg()[0]]
    runs: dict[str, list[dict]] = {"on": [], "off": []}
    for i in range(RUNS):
        for side in ("on", "off") if i % 2 == 0 else ("off", "on"):
            root, env = workspace()
            if tiny:

                def shrink(data: dict) -> None:
                    for member, params in TINY_PARAMS.items():
                        data["members"][member]["params"] = params
                    data["gates"].update(TINY_GATES)

                edit_manifest(root, RELEASE, shrink)
            result = run_json(["bench/plots.py", "--child", side], env)
            assert result["success"], result
            runs[side].append(result)
            print(f"pair {i + 1} {side}: {result['wall_s']:.1f} s, drawing {result['draw_s']:.2f} s", flush=True)
    load.append(os.getloadavg()[0])
    on, off = runs["on"], runs["off"]
    share = [(r["draw_s"] + r["io_s"]) / r["wall_s"] for r in on]
    share_held = [(r["draw_s"] + r["io_s"] + r["held_s"]) / r["wall_s"] for r in on]
    diff = [a["wall_s"] - b["wall_s"] for a, b in zip(on, off, strict=True)]
    results = {
        "started": started,
        "tiny": tiny,
        "machine": machine(),
        "load": load,
        "cold_plots": stats([r["wall_s"] for r in on]),
        "cold_no_plots": stats([r["wall_s"] for r in off]),
        "draw": stats([r["draw_s"] for r in on]),
        "io": stats([r["io_s"] for r in on]),
        "first": stats([r["first_s"] for r in on]),
        "draw_n": on[0]["draw_n"],
        "held": stats([r["held_s"] for r in on]),
        "held_n": on[0]["held_n"],
        "share": stats(share),
        "share_held": stats(share_held),
        "wall_difference": stats(diff),
        "sizes": on[0]["sizes"],
    }
    (ROOT / "bench" / "plots_results.json").write_text(json.dumps(results, indent=1) + "\n")
    sizes = results["sizes"]
    settings = "the tests' tiny model settings" if tiny else "the shipped (full-size) model settings"
    lines = [
        BEGIN,
        "## Plots: drawing cost against a cold release (`make bench-plots`)",
        "",
        f"Produced by `python bench/plots.py` (`make bench-plots`) on {started}, {results['machine']}; the "
        f"{RELEASE} release with {settings}. {RUNS} pairs of cold releases in fresh processes and fresh stores, "
        "one with plots and one without matplotlib (as without the `plots` extra), the order alternating pair by "
        "pair; the drawing time is measured inside the run with plots (every drawing call, matplotlib's import and "
        "first figure included, and the plot files written and embedded). 1-minute load average "
        f"{load[0]:.1f} when measuring began, {load[1]:.1f} at the end. min / median / max.",
        "",
        "| figure | value | target | met |",
        "|---|---|---|---|",
        f"| cold release with plots, whole process | {fmt(results['cold_plots'])} | | |",
        f"| cold release without matplotlib, whole process | {fmt(results['cold_no_plots'])} | | |",
        f"| drawing the release's {results['draw_n']} plots (model reports, chain evaluation), inside the run | "
        f"{fmt(results['draw'])} | | |",
        f"| of which the first plot (matplotlib's import and first figure) | {fmt(results['first'])} | | |",
        f"| writing and embedding them (files, base64 metadata) | {fmt(results['io'], 's', 3)} | | |",
        f"| **share of the cold release spent on plots** | {fmt(results['share'], '', 4)} | < 0.05 | "
        f"{results['share']['median'] < 0.05} |",
        f"| a held build's extra plots ({results['held_n']}: drift per split with every feature, worst slices per "
        f"report), drawn after the run | {fmt(results['held'])} | | |",
        f"| share with those too | {fmt(results['share_held'], '', 4)} | < 0.05 | "
        f"{results['share_held']['median'] < 0.05} |",
        f"| wall time with plots minus without, pair by pair (cross-check; run-to-run noise included) | "
        f"{fmt(results['wall_difference'])} | | |",
        "",
        "Sizes of the plots the run wrote (bytes): "
        + ", ".join(f"`{k}` {v:,}" for k, v in sizes.items())
        + f"; largest {max(sizes.values()) if sizes else 0:,} bytes.",
        "",
        END,
    ]
    replace_section(BEGIN, END, lines)
    print("\n".join(lines))
    print(f"median share {statistics.median(share):.4f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2] == "on")
    else:
        main()
