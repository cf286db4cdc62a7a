"""Golden-suite chain evaluation throughput with the offline bindings (batched model calls).

Trains the release's own models once (real manifest params), then times ChainRunner over the golden suite
replicated to a few thousand cases. Prints one JSON line.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(runs: int) -> None:
    from bench.support.project import REPO
    from release_assets.chains.build import KB_FILE, build_chain
    from release_assets.chains.knowledge import load_knowledge_base
    from release_assets.chains.runner import ChainRunner
    from release_assets.chains.spec import load_chain
    from release_assets.datasets.build import build_raw, build_split
    from release_assets.evaluation.golden import score
    from release_assets.evaluation.golden_inputs import load_cases, to_requests
    from release_assets.manifest import load_manifest
    from release_assets.models.train import build_model
    from release_assets.models.trainers import MODEL_KINDS

    manifest = load_manifest(ROOT / "releases" / "helpdesk.yaml")
    work = Path(tempfile.mkdtemp(prefix="chain-bench-"))
    dirs = {}
    for name in ("messages", "digits"):
        raw, split = work / name, work / f"{name}_split"
        raw.mkdir(), split.mkdir()
        build_raw(manifest.members[name], ROOT, raw)
        build_split(manifest.members[name], raw, split)
        dirs[name] = split
    predictors = {}
    for name in ("intent_model", "vision_model"):
        member = manifest.members[name]
        (work / name).mkdir()
        build_model(member, dirs[member.data], work / name, REPO)
        predictors[name] = MODEL_KINDS[member.kind].load(work / name)
    chain = manifest.members["chain"]
    (work / "chain").mkdir()
    labels = {n: p.labels for n, p in predictors.items()}
    build_chain(ROOT / chain.path, ROOT / chain.knowledge_base, labels, work / "chain")
    spec, schemas = load_chain(work / "chain" / "chain", labels)
    runner = ChainRunner(spec, schemas, predictors, load_knowledge_base(work / "chain" / KB_FILE))
    cases = load_cases(ROOT / chain.golden)
    replicated = [{**c, "id": f"{c['id']}-{i}"} for i in range(20) for c in cases]
    requests = to_requests(replicated)
    runner.run(requests[:50])  # warm-up: lazy imports and template compilation are not throughput
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        results = runner.run(requests)
        rates.append(len(requests) / (time.perf_counter() - start))
    metrics = score(replicated, results)["metrics"]
    print(
        json.dumps(
            {
                "cases": len(requests),
                "cases_per_s": {"min": min(rates), "median": statistics.median(rates), "max": max(rates), "n": runs},
                "format_valid": metrics["format_valid"],
            }
        )
    )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
