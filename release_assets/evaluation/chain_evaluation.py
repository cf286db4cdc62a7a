"""The chain evaluation artifact: the frozen chain run with the release's own models over the golden suite,
scored (``evaluation/golden.py``), traced, and written as ``report.json``, ``report.md`` and ``cases.jsonl``, with a
copy of the golden suite it scored (``golden.jsonl``): a published version carries its own test data, so regression
triage can tell a change of the test data from a change of the system."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from release_assets.chains.build import chain_knowledge
from release_assets.chains.runner import CaseResult, ChainRunner
from release_assets.chains.spec import load_chain
from release_assets.core.hashing import sha256_file
from release_assets.evaluation import report
from release_assets.evaluation.golden import evaluate, intent_outcomes, repeat_outcomes
from release_assets.evaluation.golden_inputs import load_cases
from release_assets.models.trainers import MODEL_KINDS
from release_assets.plots import render
from release_assets.plots.chain import chain_plots

GOLDEN_FILE = "golden.jsonl"


def _trace(path: Path, spec: Any, cases: list[dict[str, Any]], results: list[CaseResult], golden: Path) -> None:
    """The golden run as the same OpenTelemetry spans serving writes (a request span per case, a child per step),
    redacted, into the evaluation's own folder: lineage from the golden file to each answer, readable by the
    same tools as live traces. Written to the artifact only; no collector is called during a build."""
    from release_assets.serving.golden_traces import trace_golden_run
    from release_assets.serving.traces import Tracing

    tracing = Tracing(jsonl_path=path, otlp_endpoint=None)
    try:
        # 16 hex characters: a full sha256 would look like a secret to the redactor.
        metadata = {"golden": golden.name, "golden_sha256": sha256_file(golden)[:16]}
        trace_golden_run(tracing, spec.name, "candidate", results, cases=cases, spec=spec, metadata=metadata)
    finally:
        tracing.shutdown()


def build_chain_evaluation(
    chain_artifact: Path,
    model_dirs: dict[str, tuple[str, Path]],
    golden_path: Path,
    out_dir: Path,
    llm_cache_dir: Path | None = None,
    chain_file: str = "chain.yaml",
    repeats: int = 1,
) -> dict[str, Any]:
    """Run the frozen chain with the release's own models over the golden suite; write the report.

    ``llm_cache_dir`` lets LLM steps replay earlier answers (None: every call goes to the model); when any LLM
    step ran, every call is traced, redacted, to ``out_dir/llm_traces.jsonl``.
    """

    predictors = {name: MODEL_KINDS[kind].load(path) for name, (kind, path) in model_dirs.items()}
    spec, schemas = load_chain(chain_artifact / "chain", {n: p.labels for n, p in predictors.items()}, chain_file)
    kb = chain_knowledge(chain_artifact)
    cases = load_cases(golden_path, spec.evaluation)
    shutil.copyfile(golden_path, out_dir / GOLDEN_FILE)
    runner = ChainRunner(spec, schemas, predictors, kb, llm_cache_dir=llm_cache_dir)
    summary, results = evaluate(runner, cases)
    # Each case's own scores go to cases.jsonl (the paired regression gate reads them there, the champion's from
    # its bundle); the summary keeps the totals.
    case_scores = summary.pop("case_scores")
    _trace(out_dir / "traces.jsonl", spec, cases, results, golden_path)
    if repeats > 1:
        extra = repeat_outcomes(ChainRunner(spec, schemas, predictors, kb), cases, results, repeats)
        summary["metrics"].update(extra.pop("metrics_extra"))
        summary.update(extra)
    with (out_dir / "cases.jsonl").open("w") as fh:
        for case, res in zip(cases, results, strict=True):
            row = {"id": case["id"], "outputs": res.outputs, "errors": res.errors, "scores": case_scores[case["id"]]}
            if runner.has_llm:
                # What the chain consumed, which replays identically from the cache; offline timings and
                # calls-versus-cache-hits differ per run and live in the summary.
                row["usage"] = {
                    k: {m: x for m, x in u.items() if m not in ("llm_calls", "cache_hits")}
                    for k, u in res.usage.items()
                    if spec.step(k).is_llm
                }
            fh.write(json.dumps(row) + "\n")
    traces = [t for res in results for t in res.traces]
    if traces:
        with (out_dir / "llm_traces.jsonl").open("w") as fh:
            for trace in traces:
                fh.write(json.dumps(trace, sort_keys=True) + "\n")
    (out_dir / "report.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    metrics = summary["metrics"]
    (out_dir / "report.md").write_text(
        f"# Chain evaluation: {spec.name}\n\n"
        + report.markdown_table(["metric", "value"], list(metrics.items()))
        + "\n\n## Worst cases\n\n"
        + report.examples_markdown(summary["examples"], ["id", "message", "expected", "got", "problems"])
        + "\n"
    )
    # Evidence beside the report (plots/<name>.png, linked from report.md); none without matplotlib.
    outcomes, abstains = intent_outcomes(cases, results, spec.evaluation)
    render.append_links(out_dir / "report.md", render.write(chain_plots(outcomes, abstains), out_dir))
    return summary
