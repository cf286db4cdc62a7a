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
from release_assets.chains.runner import CaseResult, ChainRunner, KnowledgeBase
from release_assets.chains.schema import ChainSpec, ChainSpecError
from release_assets.chains.spec import load_chain
from release_assets.core.hashing import sha256_file
from release_assets.evaluation import report
from release_assets.evaluation.breaker import BreakerSettings
from release_assets.evaluation.golden import evaluate, intent_outcomes, repeat_outcomes
from release_assets.evaluation.golden_inputs import load_cases
from release_assets.evaluation.judge import Judge, JudgeItem, is_judge_model, judge_metrics, reply_facts, summarise
from release_assets.evaluation.judge_calibration import calibrate, calibration_metrics
from release_assets.models.judge_model import load_labelled
from release_assets.models.trainers import MODEL_KINDS
from release_assets.plots import render
from release_assets.plots.chain import chain_plots, judge_scores
from release_assets.plots.render import kept

GOLDEN_FILE = "golden.jsonl"


def _trace(
    path: Path,
    spec: Any,
    cases: list[dict[str, Any]],
    results: list[CaseResult],
    golden: Path,
    judgements: dict[str, Any] | None = None,
) -> None:
    """The golden run as the same OpenTelemetry spans serving writes (a request span per case, a child per step),
    redacted, into the evaluation's own folder: lineage from the golden file to each answer, readable by the
    same tools as live traces. Written to the artifact only; no collector is called during a build."""
    from release_assets.serving.golden_traces import trace_golden_run
    from release_assets.serving.traces import Tracing

    tracing = Tracing(jsonl_path=path, otlp_endpoint=None)
    try:
        # 16 hex characters: a full sha256 would look like a secret to the redactor.
        metadata = {"golden": golden.name, "golden_sha256": sha256_file(golden)[:16]}
        trace_golden_run(
            tracing, spec.name, "candidate", results, cases=cases, spec=spec, metadata=metadata, judgements=judgements
        )
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
    judge_labels: Path | None = None,
    breaker: BreakerSettings | None = None,
) -> dict[str, Any]:
    """Run the frozen chain with the release's own models over the golden suite; write the report.

    ``llm_cache_dir`` lets LLM steps replay earlier answers (None: every call goes to the model); when any LLM
    step ran, every call is traced, redacted, to ``out_dir/llm_traces.jsonl``. The judge's answers are cached there
    too. ``judge_labels``: the labelled set the chain's judge is calibrated on (its held-out half). ``breaker``:
    stop once validation failures pass its rate (the report then covers the cases run).
    """

    predictors = {name: MODEL_KINDS[kind].load(path) for name, (kind, path) in model_dirs.items()}
    spec, schemas = load_chain(chain_artifact / "chain", {n: p.labels for n, p in predictors.items()}, chain_file)
    kb = chain_knowledge(chain_artifact)
    cases = load_cases(golden_path, spec.evaluation)
    shutil.copyfile(golden_path, out_dir / GOLDEN_FILE)
    runner = ChainRunner(spec, schemas, predictors, kb, llm_cache_dir=llm_cache_dir)
    summary, results = evaluate(runner, cases, breaker)
    cases = cases[: len(results)]  # all of them, unless the breaker stopped the run
    judged = _judge(spec, kb, cases, results, predictors, model_dirs, llm_cache_dir, judge_labels, summary)
    # Each case's own scores go to cases.jsonl (the paired regression gate reads them there, the champion's from
    # its bundle); the summary keeps the totals.
    case_scores = summary.pop("case_scores")
    _trace(out_dir / "traces.jsonl", spec, cases, results, golden_path, judged)
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
            if judged is not None:
                row["judge"] = judged[case["id"]]
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
        + (judge_markdown(summary["judge"]) if "judge" in summary else "")
    )
    # Evidence beside the report (plots/<name>.png, linked from report.md); none without matplotlib.
    outcomes, abstains = intent_outcomes(cases, results, spec.evaluation)
    plots = chain_plots(outcomes, abstains)
    if judged:
        plots += kept([judge_scores([j["score"] for j in judged.values() if "score" in j], summary["judge"])])
    render.append_links(out_dir / "report.md", render.write(plots, out_dir))
    return summary


def _judge(
    spec: ChainSpec,
    kb: KnowledgeBase,
    cases: list[dict[str, Any]],
    results: list[CaseResult],
    predictors: dict[str, Any],
    model_dirs: dict[str, tuple[str, Path]],
    cache_dir: Path | None,
    labels: Path | None,
    summary: dict[str, Any],
) -> dict[str, Any] | None:
    """Judge every golden reply on the chain's rubrics and the judge itself on the labelled set's held-out half;
    into ``summary``: ``judge`` (pass rates, worst cases, cache hits, calibration) and the judge's metrics. Returns
    each case's verdict, score and reason by id (None when the chain has no judge)."""
    if spec.judge is None:
        return None
    assert spec.directory is not None
    predictor, model_dir = None, None
    if spec.judge.by_model:
        judges = sorted(name for name, p in predictors.items() if is_judge_model(p))
        if len(judges) != 1:
            raise ChainSpecError(
                f"{spec.path}: judge.backend: model needs exactly one judge_model among the models the chain uses "
                f"(found {', '.join(judges) or 'none'} among {', '.join(sorted(predictors)) or 'none'})"
            )
        predictor, model_dir = predictors[judges[0]], model_dirs[judges[0]][1]
    judge = Judge(spec.judge, spec.directory, predictor, model_dir, cache_dir)
    items = [
        JudgeItem(
            case["id"],
            case["message"],
            reply_facts(spec, kb, case["message"], case.get("attachment") is not None, res),
            _reply(spec, res),
        )
        for case, res in zip(cases, results, strict=True)
    ]
    judgements = judge.judge(items)
    part = summarise(spec.judge, items, judgements)
    summary["metrics"].update(judge_metrics(part))
    if labels is not None:
        labelled = load_labelled(labels, list(spec.judge.rubrics))
        part["calibration"] = calibrate(judge, labelled)
        summary["metrics"].update(calibration_metrics(part["calibration"]))
    summary["judge"] = part
    return {j.id: j.record(spec.judge) for j in judgements}


def _reply(spec: ChainSpec, res: CaseResult) -> str:
    target = spec.evaluation.target("reply")
    assert target is not None and target[1] is not None, "spec_checks requires evaluation.reply with a judge"
    return str(res.outputs.get(target[0], {}).get(target[1]) or "")


def judge_markdown(part: dict[str, Any]) -> str:
    """The judge's section of report.md: pass rates, what it could not judge, its agreement with the labels."""
    lines = ["\n## Judge\n", f"Backend `{part['backend']}`: {part['answered']} of {part['cases']} replies judged."]
    if part["unanswered"]:
        lines.append(f"Could not judge {part['unanswered']}: {part['first_error']}")
    rates = [(r, part["pass_rates"][r], part["thresholds"][r]) for r in part["pass_rates"]]
    lines += ["", report.markdown_table(["rubric", "pass rate", "threshold"], rates), "", "Lowest scores:", ""]
    lines.append(report.examples_markdown(part["worst"], ["id", "rubric", "score", "reason", "reply"]))
    cal = part.get("calibration")
    if cal and "overall" in cal:
        o = cal["overall"]
        lines += [
            "",
            f"Agreement with the labelled set's held-out half ({o['rows']} replies, {o['groups']} messages): "
            f"accuracy {o['accuracy']:.3f} (95% CI {o['accuracy_ci'][0]:.3f}-{o['accuracy_ci'][1]:.3f}), "
            f"kappa {o['kappa']:.3f} (95% CI {o['kappa_ci'][0]:.3f}-{o['kappa_ci'][1]:.3f}).",
        ]
    elif cal:
        lines += ["", f"Calibration could not run: {cal.get('first_error')}"]
    return "\n".join(lines) + "\n"
