"""Code-change sensor tick cost: over this repository's watched files, and over a synthetic 10,000-file tree."""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _stats(ms: list[float]) -> dict[str, float]:
    return {"min": min(ms), "median": statistics.median(ms), "max": max(ms), "n": len(ms)}


def main(runs: int) -> None:
    import dagster as dg

    from release_assets.core.settings import Settings
    from release_assets.definitions import build_defs, resources_for
    from release_assets.manifest import load_manifests
    from release_assets.release.watch import scan

    tmp = Path(tempfile.mkdtemp(prefix="sensor-bench-"))
    settings = Settings(
        project_root=ROOT,
        store_root=tmp / "store",
        mlflow_tracking_uri=f"sqlite:///{tmp}/m.db",
        mlflow_artifact_root=str(tmp / "mlartifacts"),
    )
    defs = build_defs(load_manifests(ROOT / "releases"), ROOT, resources_for(settings))
    sensor = defs.get_sensor_def("code_change_sensor")
    repo_ms, cursor = [], None
    with dg.instance_for_test() as instance:
        for i in range(runs + 1):
            context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
            start = time.perf_counter()
            sensor(context)
            elapsed = (time.perf_counter() - start) * 1000
            cursor = context.cursor
            if i:  # the first tick records the baseline (hashes every file once)
                repo_ms.append(elapsed)
    repo_files = len(json.loads(cursor)["files"])

    tree = tmp / "tree"
    paths = []
    for i in range(10_000):
        path = tree / f"d{i // 100:03d}" / f"f{i:05d}.j2"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"template {i}\n")
        paths.append(str(path))
    previous = scan(paths, {}).files
    synthetic_ms = []
    for i in range(runs):
        Path(paths[i * 7]).write_text(f"edited {i}\n")  # one real edit per tick, like a person saving a file
        start = time.perf_counter()
        result = scan(paths, previous)
        synthetic_ms.append((time.perf_counter() - start) * 1000)
        assert len(result.changed) == 1, result.changed
        previous = result.files
    print(
        json.dumps(
            {
                "repo_ms": _stats(repo_ms),
                "repo_files": repo_files,
                "synthetic_ms": _stats(synthetic_ms),
                "synthetic_files": len(paths),
            }
        )
    )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
