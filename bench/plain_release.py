"""Both releases' training and evaluation as plain Python: the reference the Dagster release is compared with.

The same pure functions the assets call (build, split, train, evaluate, chain build and golden evaluation), in one
process, in dependency order, with no Dagster, no MLflow, no gates and no bundle. Run as a script, it prints one
JSON line: {"wall_s": ..., "stages": {stage: seconds}}.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def plain_release(project_root: Path = ROOT, only: list[str] | None = None) -> dict:
    from release_assets.chains.build import build_chain
    from release_assets.evaluation.chain_evaluation import build_chain_evaluation
    from release_assets.evaluation.model_eval import build_model_report
    from release_assets.manifest import family, load_manifests, member_kind
    from release_assets.models.train import build_model

    stages: dict[str, float] = {}
    work = Path(tempfile.mkdtemp(prefix="plain-release-"))

    def folder(name: str) -> Path:
        path = work / name
        path.mkdir(parents=True)
        return path

    def timed(stage: str, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        stages[stage] = stages.get(stage, 0.0) + time.perf_counter() - start
        return out

    for manifest in load_manifests(project_root / "releases"):
        if only and manifest.name not in only:
            continue
        dirs: dict[str, Path] = {}
        for name in manifest.topological_order():
            member = manifest.members[name]
            key = f"{manifest.name}/{name}"
            if family(member.kind) == "dataset":
                runtime = member_kind(member.kind).load_runtime()
                dirs[name] = folder(f"{key}/raw")
                timed("data", runtime.build_raw, member, project_root, dirs[name])
                dirs[f"{name}_split"] = folder(f"{key}/split")
                timed("data", runtime.build_split, member, dirs[name], dirs[f"{name}_split"])
            elif family(member.kind) == "model":
                dirs[name] = folder(key)
                split = dirs[f"{member.data}_split"]
                summary = timed("train", build_model, member, split, dirs[name], project_root)
                dirs[f"{name}:labels"] = summary["labels"]
                mft = [c.model_dump() for c in getattr(member, "mft_cases", [])]
                timed("evaluate", build_model_report, member.kind, dirs[name], split, folder(f"{key}_report"), key, mft)
            else:
                labels = {m: dirs[f"{m}:labels"] for m in member.uses}
                kb = project_root / member.knowledge_base if member.knowledge_base else None
                dirs[name] = folder(key)
                timed("chain", build_chain, project_root / member.path, kb, labels, dirs[name], member.chain_file)
                models = {m: (manifest.members[m].kind, dirs[m]) for m in member.uses}
                timed(
                    "evaluate",
                    build_chain_evaluation,
                    dirs[name],
                    models,
                    project_root / member.golden,
                    folder(f"{key}_evaluation"),
                    None,
                    member.chain_file,
                    member.repeats,
                )
    return stages


if __name__ == "__main__":
    start = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    # --release NAME (repeatable): only those releases, e.g. iris for the `release-assets release iris` figure.
    names = [sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == "--release"]
    stages = plain_release(only=names or None)
    print(json.dumps({"wall_s": time.perf_counter() - start, "stages": stages}))
