"""Score a prompt chain on its golden suite: format validity, intent accuracy, entity F1, facts, latency."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from release_assets.chains.runner import CaseResult, ChainRequest, ChainRunner, KnowledgeBase
from release_assets.evaluation.metrics import percentiles_ms

WORST_EXAMPLES = 10
LATENCY_SAMPLES = 50


class GoldenSuiteError(ValueError):
    """A golden case that cannot be scored; the message names file and line."""


def load_knowledge_base(path: Path) -> KnowledgeBase:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("facts"), dict):
        raise GoldenSuiteError(f"{path}: expected a mapping with `facts: {{id: sentence}}` and `products: [...]`")
    return KnowledgeBase(facts={str(k): str(v) for k, v in data["facts"].items()}, products=data.get("products", []))


def load_cases(path: Path) -> list[dict[str, Any]]:
    cases = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
            case["message"], case["expected"]["intent"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise GoldenSuiteError(f"{path}:{line_no}: not a golden case ({type(exc).__name__}: {exc})") from None
        cases.append(case)
    return cases


def to_requests(cases: list[dict[str, Any]]) -> list[ChainRequest]:
    """Attachments name images of scikit-learn's digits by index; resolve them to pixels once."""
    images = None
    requests = []
    for case in cases:
        attachment = None
        if case.get("attachment"):
            if images is None:
                from release_assets.datasets.digits import load_digits_arrays

                images, _ = load_digits_arrays()
            attachment = [images[i].ravel().astype(int).tolist() for i in case["attachment"]["digits"]]
        requests.append(ChainRequest(id=case["id"], message=case["message"], attachment=attachment))
    return requests


def _normalise(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind == "amount":
        try:
            return f"{float(value):.2f}"
        except ValueError:
            return str(value)
    return str(value).strip().lower()


def _entity_counts(expected: dict[str, Any], got: dict[str, Any]) -> tuple[int, int, int]:
    exp = {(k, _normalise(k, v)) for k, v in expected.items() if v not in (None, "")}
    pred = {(k, _normalise(k, v)) for k, v in got.items() if v not in (None, "")}
    return len(exp & pred), len(pred - exp), len(exp - pred)


def score(cases: list[dict[str, Any]], results: list[CaseResult]) -> dict[str, Any]:
    n = len(cases)
    tp = fp = fn = 0
    intent_ok = facts_ok = forbidden_ok = valid = 0
    failures = []
    for case, res in zip(cases, results, strict=True):
        intent = res.outputs.get("classify_intent", {}).get("intent")
        entities = res.outputs.get("extract_entities", {})
        reply = res.outputs.get("generate_response", {}).get("reply", "")
        t, f_p, f_n = _entity_counts(case["expected"].get("entities", {}), entities)
        tp, fp, fn = tp + t, fp + f_p, fn + f_n
        missing = [p for p in case.get("must_contain", []) if p.lower() not in reply.lower()]
        forbidden = [p for p in case.get("must_not_contain", []) if p.lower() in reply.lower()]
        problems = []
        if not res.format_valid:
            problems.append("format: " + "; ".join(f"{k}: {v}" for k, v in res.errors.items()))
        if intent != case["expected"]["intent"]:
            problems.append(f"intent {intent}")
        if f_p or f_n:
            problems.append("entities")
        if missing:
            problems.append(f"missing {missing}")
        if forbidden:
            problems.append(f"forbidden {forbidden}")
        valid += res.format_valid
        intent_ok += intent == case["expected"]["intent"]
        facts_ok += not missing
        forbidden_ok += not forbidden
        if problems:
            failures.append(
                {
                    "id": case["id"],
                    "message": case["message"],
                    "expected": case["expected"]["intent"]
                    + "".join(f", {k}={v}" for k, v in case["expected"].get("entities", {}).items()),
                    "got": f"{intent}" + "".join(f", {k}={v}" for k, v in entities.items() if v is not None),
                    "problems": "; ".join(problems),
                    "_weight": len(problems),
                }
            )
    failures.sort(key=lambda f: (-f.pop("_weight"), f["id"]))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return {
        "metrics": {
            "format_valid": valid / n if n else float("nan"),
            "intent_accuracy": intent_ok / n if n else float("nan"),
            "entity_f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "required_facts": facts_ok / n if n else float("nan"),
            "forbidden_absent": forbidden_ok / n if n else float("nan"),
            "cases": n,
        },
        "examples": failures[:WORST_EXAMPLES],
        "failed_cases": len(failures),
    }


def evaluate(runner: ChainRunner, cases: list[dict[str, Any]]) -> tuple[dict[str, Any], list[CaseResult]]:
    requests = to_requests(cases)
    start = time.perf_counter()
    results = runner.run(requests)
    elapsed = time.perf_counter() - start
    summary = score(cases, results)
    # Batched throughput is what evaluation costs; one-at-a-time latency is what a customer waits.
    singles = []
    runner.run(requests[:1])
    for request in requests[:LATENCY_SAMPLES]:
        t0 = time.perf_counter()
        runner.run([request])
        singles.append(time.perf_counter() - t0)
    summary["metrics"].update(percentiles_ms(singles))
    summary["metrics"]["cases_per_second"] = len(requests) / elapsed if elapsed else float("inf")
    return summary, results


def build_chain_evaluation(
    chain_artifact: Path,
    model_dirs: dict[str, tuple[str, Path]],
    golden_path: Path,
    out_dir: Path,
) -> dict[str, Any]:
    """Run the frozen chain with the release's own models over the golden suite; write the report."""
    from release_assets.chains.build import KB_FILE
    from release_assets.chains.spec import load_chain
    from release_assets.evaluation import report
    from release_assets.models.registry import MODEL_KINDS

    predictors = {name: MODEL_KINDS[kind].load(path) for name, (kind, path) in model_dirs.items()}
    spec, schemas = load_chain(chain_artifact / "chain", {n: p.labels for n, p in predictors.items()})
    kb = load_knowledge_base(chain_artifact / KB_FILE)
    cases = load_cases(golden_path)
    summary, results = evaluate(ChainRunner(spec, schemas, predictors, kb), cases)
    with (out_dir / "cases.jsonl").open("w") as fh:
        for case, res in zip(cases, results, strict=True):
            fh.write(json.dumps({"id": case["id"], "outputs": res.outputs, "errors": res.errors}) + "\n")
    (out_dir / "report.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    metrics = summary["metrics"]
    (out_dir / "report.md").write_text(
        f"# Chain evaluation: {spec.name}\n\n"
        + report.markdown_table(["metric", "value"], list(metrics.items()))
        + "\n\n## Worst cases\n\n"
        + report.examples_markdown(summary["examples"], ["id", "message", "expected", "got", "problems"])
        + "\n"
    )
    return summary
