"""The sentence-embedding model (#27 item 1): its cold load in fresh processes, and golden-suite throughput.

1. Export: the kbqa release's `embedder` member built once from the pinned package weights (sha256 check, ONNX
   export, parity with torch), timed.
2. Cold load, ``--runs`` fresh processes: importing the runtime, loading the model (re-hashing model.onnx, the
   onnxruntime session, the tokenizer) and the first embedding, each timed inside the process.
3. Throughput on the golden suites, in this process, interleaved round by round so machine load hits both alike:
   semantic_similarity scoring alone (each case's reply against its reference reply; the replies are the kbqa
   chain's own answers, and for helpdesk the reference replies of the next case, which have the same lengths),
   token F1 on the same pairs, and the whole kbqa chain evaluation (retrieval + scoring) in cases/s.

4. The calibration table of the similarity checks on the labelled set (evaluation/similarity_calibration.py).

Prints one JSON line and the rows for BENCHMARKS.md. About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_COLD = """
import json, sys, time
t0 = time.perf_counter()
from release_assets.models.embedding import OnnxSentenceEmbedder
t1 = time.perf_counter()
model = OnnxSentenceEmbedder(sys.argv[1])
t2 = time.perf_counter()
model.embed(["How long do I have to return my boots?"])
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_embed_s": t3 - t2, "total_s": t3 - t0}))
"""


def _cold_loads(model_dir: Path, runs: int) -> list[dict[str, float]]:
    out = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", _COLD, str(model_dir)], cwd=ROOT, capture_output=True, text=True, check=True
        )
        out.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return out


def main(runs: int) -> dict:
    from release_assets.chains.build import KB_FILE, build_chain
    from release_assets.chains.knowledge import load_knowledge_base
    from release_assets.chains.runner import ChainRunner
    from release_assets.chains.spec import load_chain
    from release_assets.evaluation.golden import score, semantic_similarities, token_f1
    from release_assets.evaluation.golden_inputs import load_cases, to_requests
    from release_assets.evaluation.similarity_calibration import calibration_table
    from release_assets.manifest import load_manifest
    from release_assets.models.embedding import OnnxSentenceEmbedder, build

    manifest = load_manifest(ROOT / "releases" / "kbqa.yaml")
    work = Path(tempfile.mkdtemp(prefix="embedding-bench-"))
    model_dir = work / "embedder"
    model_dir.mkdir()
    start = time.perf_counter()
    build(manifest.members["embedder"], model_dir, ROOT)
    export_s = time.perf_counter() - start
    onnx_mb = (model_dir / "model.onnx").stat().st_size / 1e6

    cold = _cold_loads(model_dir, runs)

    embedder = OnnxSentenceEmbedder(model_dir)
    chain = manifest.chain("chain")
    (work / "chain").mkdir()
    build_chain(ROOT / chain.path, ROOT / chain.knowledge_base, {"embedder": []}, work / "chain")
    spec, schemas = load_chain(work / "chain" / "chain", {"embedder": []})
    runner = ChainRunner(spec, schemas, {"embedder": embedder}, load_knowledge_base(work / "chain" / KB_FILE))
    kbqa = load_cases(ROOT / "data" / "golden" / "kbqa.jsonl") + load_cases(
        ROOT / "data" / "golden" / "kbqa_build.jsonl"
    )
    kbqa_replies = [r.outputs["answer"]["reply"] for r in runner.run(to_requests(kbqa))]
    helpdesk = [c for c in load_cases(ROOT / "data" / "golden" / "helpdesk.jsonl") if c.get("reference_reply")]
    helpdesk_replies = [helpdesk[(i + 1) % len(helpdesk)]["reference_reply"] for i in range(len(helpdesk))]
    cases, replies = kbqa + helpdesk, kbqa_replies + helpdesk_replies
    semantic_similarities(embedder, cases[:20], replies[:20])  # warm-up: first-run allocations are not throughput

    rates: dict[str, list[float]] = {"semantic": [], "token_f1": [], "kbqa_chain": []}
    for _ in range(runs):
        t = time.perf_counter()
        semantic_similarities(embedder, cases, replies)
        rates["semantic"].append(len(cases) / (time.perf_counter() - t))
        t = time.perf_counter()
        for case, reply in zip(cases, replies, strict=True):
            token_f1(reply, case["reference_reply"])
        rates["token_f1"].append(len(cases) / (time.perf_counter() - t))
        t = time.perf_counter()
        results = runner.run(to_requests(kbqa))
        score(kbqa, results, spec.evaluation, embedder)
        rates["kbqa_chain"].append(len(kbqa) / (time.perf_counter() - t))

    def median(key: str, rows: list[dict[str, float]]) -> float:
        return statistics.median(r[key] for r in rows)

    out = {
        "runs": runs,
        "export_s": round(export_s, 2),
        "onnx_mb": round(onnx_mb, 1),
        "cold_total_s": round(median("total_s", cold), 3),
        "cold_import_s": round(median("import_s", cold), 3),
        "cold_load_s": round(median("load_s", cold), 3),
        "cold_first_embed_s": round(median("first_embed_s", cold), 3),
        "golden_cases": len(cases),
        "semantic_cases_per_s": round(statistics.median(rates["semantic"]), 1),
        "token_f1_cases_per_s": round(statistics.median(rates["token_f1"]), 1),
        "kbqa_chain_cases_per_s": round(statistics.median(rates["kbqa_chain"]), 1),
    }
    calibration = _calibration(embedder)
    out["calibration"] = {
        name: {"threshold": r["threshold"], "kappa": r["held_out"]["kappa"], "accuracy": r["held_out"]["accuracy"]}
        for name, r in calibration.items()
    }
    print(json.dumps(out))
    print(
        "\n| figure | value |\n|---|---|\n"
        f"| embedding model export (sha256 check, ONNX export, parity with torch), once per weights | "
        f"{out['export_s']} s ({out['onnx_mb']} MB model.onnx) |\n"
        f"| cold load in a fresh process: import + load (re-hash, session, tokenizer) + first embedding, median of "
        f"{runs} | {out['cold_total_s']} s ({out['cold_import_s']} + {out['cold_load_s']} + "
        f"{out['cold_first_embed_s']}) |\n"
        f"| semantic_similarity scoring, {len(cases)} golden cases (kbqa both parts + helpdesk) | "
        f"{out['semantic_cases_per_s']} cases/s (token F1 on the same pairs: {out['token_f1_cases_per_s']} cases/s) |\n"
        f"| kbqa chain evaluation with the embedder (retrieval + scoring), {len(kbqa)} cases | "
        f"{out['kbqa_chain_cases_per_s']} cases/s |"
    )
    print(
        "\nSimilarity thresholds on data/judge/labelled.jsonl (truth: factual_consistency), chosen on the train half:\n"
    )
    print(calibration_table(calibration))
    return out


def _calibration(embedder) -> dict:
    from release_assets.evaluation.similarity_calibration import calibrate, numbers_check, token_f1_check

    rows = [json.loads(line) for line in (ROOT / "data" / "judge" / "labelled.jsonl").read_text().splitlines()]
    return {
        "semantic similarity": calibrate(rows, embedder.similarity),
        "token F1": calibrate(rows, token_f1_check),
        "numbers of the reference": calibrate(rows, numbers_check),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    main(parser.parse_args().runs)
