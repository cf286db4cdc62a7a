"""One release run through Dagster in a fresh process, for the benchmark: prints wall time and step durations.

Environment decides where state goes (DAGSTER_HOME, RELEASE_ASSETS_*); ``--select-changed CURSOR_FILE`` first ticks
the code-change sensor from a saved cursor and runs only what it requests (the prompt-only-change figure);
``--executor multiprocess`` swaps the in-process executor for a forkserver multiprocess one.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

START = time.perf_counter()
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    phases: dict[str, float] = {}  # where the wall time went, in order (for the profile in BENCHMARKS.md)
    mark = time.perf_counter()

    def phase(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name] = phases.get(name, 0.0) + now - mark
        mark = now

    import dagster as dg

    phase("import dagster")
    from release_assets.cli.common import dagster_instance
    from release_assets.core.settings import get_settings
    from release_assets.definitions import build_defs, resources_for
    from release_assets.manifest import load_manifests

    phase("import release_assets")

    parser = argparse.ArgumentParser()
    parser.add_argument("--select-changed", type=Path)
    parser.add_argument("--executor", choices=["in_process", "multiprocess"], default="in_process")
    parser.add_argument("--release", action="append", default=[])
    args = parser.parse_args()
    os.environ["BENCH_RELEASES"] = ",".join(args.release)  # read again by _reconstruct in step processes

    settings = get_settings()
    manifests = [m for m in load_manifests(settings.releases_path) if not args.release or m.name in args.release]
    defs = build_defs(manifests, settings.project_root, resources_for(settings))
    phase("manifests and definitions")
    job_name = "release_all"
    selection_keys = None
    with dagster_instance(settings.project_root) as instance:
        phase("Dagster instance (sqlite storage)")
        if args.select_changed:
            sensor = defs.get_sensor_def("code_change_sensor")
            context = dg.build_sensor_context(
                instance=instance, cursor=args.select_changed.read_text() or None, definitions=defs
            )
            request = sensor(context)
            args.select_changed.write_text(context.cursor)
            if not isinstance(request, dg.RunRequest):
                print(json.dumps({"skipped": request.skip_message}))
                return
            selection_keys = request.asset_selection
            phase("code-change sensor tick")
        if selection_keys is not None or args.executor != "in_process":
            executor = (
                dg.multiprocess_executor.configured({"max_concurrent": 2, "start_method": {"forkserver": {}}})
                if args.executor == "multiprocess"
                else dg.in_process_executor
            )
            selection = dg.AssetSelection.assets(*selection_keys) if selection_keys else dg.AssetSelection.all()
            job = dg.define_asset_job("bench_job", selection=selection, executor_def=executor)
            defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
            job_name = "bench_job"
        quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
        phase("job definition")
        run_start = time.perf_counter()
        result = (
            defs.resolve_job_def(job_name).execute_in_process(instance=instance, raise_on_error=False, run_config=quiet)
            if args.executor == "in_process"
            else dg.execute_job(dg.reconstructable(_reconstruct), instance=instance, run_config=quiet)
        )
        run_s = time.perf_counter() - run_start
        stats = instance.get_run_step_stats(result.run_id)
        mark = time.perf_counter()
    steps = {s.step_key: (s.end_time or 0) - (s.start_time or 0) for s in stats}
    phases["run: steps"] = sum(steps.values())
    phases["run: outside steps (run record, events, resources)"] = run_s - phases["run: steps"]
    print(
        json.dumps(
            {
                "success": result.success,
                "wall_s": time.perf_counter() - START,
                "run_s": run_s,
                "steps": steps,
                "assets": sorted(k for k in steps if not k.endswith("_gates")),
                "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "phases": phases,
            }
        )
    )


def _reconstruct():
    """Multiprocess execution needs a reconstructable job: rebuild the benchmark job in each process."""
    import dagster as dg

    from release_assets.core.settings import get_settings
    from release_assets.definitions import build_defs, resources_for
    from release_assets.manifest import load_manifests

    settings = get_settings()
    names = [n for n in os.environ.get("BENCH_RELEASES", "").split(",") if n]
    manifests = [m for m in load_manifests(settings.releases_path) if not names or m.name in names]
    defs = build_defs(manifests, settings.project_root, resources_for(settings))
    executor = dg.multiprocess_executor.configured({"max_concurrent": 2, "start_method": {"forkserver": {}}})
    job = dg.define_asset_job("bench_job", selection=dg.AssetSelection.all(), executor_def=executor)
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[job])).resolve_job_def("bench_job")


if __name__ == "__main__":
    main()
