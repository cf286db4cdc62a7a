"""Score a prompt chain on its golden suite: format validity, intent accuracy, entity F1, facts, latency.

Which step output each golden field is compared with is the chain's own ``evaluation:`` mapping
(:class:`~release_assets.chains.spec.EvaluationSpec`); nothing here knows a step by name, and a metric whose field
is not mapped is left out of the summary (its gate then reports it as not measured).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

from release_assets.chains.runner import CaseResult, ChainRequest, ChainRunner, KnowledgeBase
from release_assets.chains.spec import EvaluationSpec
from release_assets.evaluation.metrics import percentiles_ms
from release_assets.textfiles import NotUTF8Error, byte_lines, decode_utf8, read_yaml

WORST_EXAMPLES = 10
COMMON_ERRORS = 5
_TOKENS = re.compile(r"[a-z0-9]+(?:['.-][a-z0-9]+)*")
LATENCY_SAMPLES = 50


class GoldenSuiteError(ValueError):
    """A golden case that cannot be scored; the message names file and line."""


def load_knowledge_base(path: Path) -> KnowledgeBase:
    """``facts: {id: sentence}``, optionally ``products: [...]`` and ``questions: {fact id: [heading, ...]}``."""
    data = read_yaml(path, GoldenSuiteError, line_sep=":")
    if not isinstance(data, dict) or not isinstance(data.get("facts"), dict):
        raise GoldenSuiteError(f"{path}: expected a mapping with `facts: {{id: sentence}}` and `products: [...]`")
    facts = {str(k): str(v) for k, v in data["facts"].items()}
    questions = data.get("questions") or {}
    if not isinstance(questions, dict) or not all(isinstance(v, list) for v in questions.values()):
        raise GoldenSuiteError(f"{path}: questions: expected `{{fact id: [question, ...]}}`")
    unknown = sorted(str(k) for k in questions if str(k) not in facts)
    if unknown:
        raise GoldenSuiteError(f"{path}: questions.{unknown[0]}: no fact with that id")
    products = data.get("products", [])
    return KnowledgeBase(
        facts=facts,
        products=products,
        questions={str(k): [str(q) for q in v] for k, v in questions.items()},
        aliases=_aliases(path, data.get("aliases") or {}, products),
    )


def _aliases(path: Path, aliases: Any, products: list[str]) -> dict[str, list[str]]:
    """``aliases: {product: [partial name, ...]}``. One alias naming two products would make extraction depend on
    the order of a YAML mapping, so it is refused here, like an alias of a product the catalogue does not sell."""
    if not isinstance(aliases, dict) or not all(isinstance(v, list) for v in aliases.values()):
        raise GoldenSuiteError(f"{path}: aliases: expected `{{product: [alias, ...]}}`")
    owner: dict[str, str] = {name.lower(): name for name in products}
    out: dict[str, list[str]] = {}
    for product, names in aliases.items():
        if product not in products:
            raise GoldenSuiteError(f"{path}: aliases.{product}: not a product of the catalogue")
        for alias in map(str, names):
            key = " ".join(alias.lower().split())
            if not key:
                raise GoldenSuiteError(f"{path}: aliases.{product}: an alias must not be empty")
            if owner.setdefault(key, product) != product:
                raise GoldenSuiteError(f"{path}: aliases.{product}: {alias!r} already names {owner[key]!r}")
        out[str(product)] = [str(a) for a in names]
    return out


def load_cases(path: Path, evaluation: EvaluationSpec | None = None) -> list[dict[str, Any]]:
    """Every case needs an ``id`` and a ``message``; ``expected.intent`` only when the chain maps ``intent``."""
    needs_intent = evaluation is not None and evaluation.intent is not None
    cases = []
    for line_no, raw in byte_lines(path):
        try:
            case = json.loads(decode_utf8(raw, line_no))
            case["id"], case["message"]
            if needs_intent:
                case["expected"]["intent"]
        except NotUTF8Error as exc:
            raise GoldenSuiteError(f"{path}:{line_no}: {exc.detail}") from None
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


def token_f1(reply: str, reference: str) -> float:
    """Token-level F1 between a reply and the golden reply (bag of lower-cased words, SQuAD style)."""
    got, want = _TOKENS.findall(reply.lower()), _TOKENS.findall(reference.lower())
    if not got or not want:
        return float(got == want)
    common = sum((Counter(got) & Counter(want)).values())
    if not common:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


class _Targets:
    """Reads the mapped outputs of one case: the intent value, the entity dict, the reply text."""

    def __init__(self, evaluation: EvaluationSpec) -> None:
        self.intent, self.entities, self.reply, self.abstained = (
            evaluation.target(k) for k in ("intent", "entities", "reply", "abstained")
        )

    @staticmethod
    def _read(res: CaseResult, target: tuple[str, str | None]) -> Any:
        step, name = target
        out = res.outputs.get(step, {})
        return out if name is None else out.get(name)

    def intent_of(self, res: CaseResult) -> Any:
        return self._read(res, self.intent) if self.intent else None

    def entities_of(self, res: CaseResult) -> dict[str, Any]:
        return self._read(res, self.entities) if self.entities else {}

    def reply_of(self, res: CaseResult) -> str:
        return (self._read(res, self.reply) or "") if self.reply else ""

    def abstained_of(self, res: CaseResult) -> bool:
        """A case whose reply step never ran (a format failure) did not abstain: it did not ask either."""
        return bool(self._read(res, self.abstained)) if self.abstained else False

    def outcome(self, res: CaseResult) -> Any:
        """What must not change between runs: the decision and the whole step that replies (or every output,
        when neither is mapped)."""
        if not (self.intent or self.reply):
            return res.outputs
        return [self.intent_of(res), res.outputs.get(self.reply[0]) if self.reply else None]


def _labelled(intent: list[Any], entities: dict[str, Any]) -> str:
    """``refund, order_id=12345``: the decision and the entities, as the worst-cases table shows them."""
    return ", ".join([*(f"{v}" for v in intent), *(f"{k}={v}" for k, v in entities.items())])


def score(
    cases: list[dict[str, Any]], results: list[CaseResult], evaluation: EvaluationSpec | None = None
) -> dict[str, Any]:
    """Compare each result with its case through ``evaluation`` (default: nothing mapped, so only format
    validity is measured)."""
    targets = _Targets(evaluation or EvaluationSpec())
    n = len(cases)
    similarities = []
    tp = fp = fn = 0
    intent_ok = facts_ok = forbidden_ok = valid = abstained_n = confident_wrong = 0
    failures = []
    errors: Counter[tuple[str, str]] = Counter()
    for case, res in zip(cases, results, strict=True):
        errors.update(res.errors.items())
        expected = case.get("expected") or {}
        intent = targets.intent_of(res)
        entities = targets.entities_of(res)
        reply = targets.reply_of(res)
        abstained = targets.abstained_of(res)
        problems = []
        if not res.format_valid:
            problems.append("format: " + "; ".join(f"{k}: {v}" for k, v in res.errors.items()))
        if targets.intent:
            intent_ok += intent == expected["intent"]
            if intent != expected["intent"]:
                # Acting on a wrong intent is the costly mistake (a fluent wrong answer); asking is not.
                acted_wrongly = bool(targets.abstained) and not abstained
                confident_wrong += acted_wrongly
                problems.append(f"intent {intent}" + (" (acted on it)" if acted_wrongly else ""))
        if targets.abstained:
            abstained_n += abstained
            should_ask = expected.get("abstain")  # optional in a golden case: whether it must ask or must act
            if should_ask is not None and bool(should_ask) != abstained:
                problems.append("acted, should have asked" if should_ask else "asked, should have acted")
        if targets.entities:
            t, f_p, f_n = _entity_counts(expected.get("entities", {}), entities)
            tp, fp, fn = tp + t, fp + f_p, fn + f_n
            if f_p or f_n:
                problems.append("entities")
        if targets.reply:
            missing = [p for p in case.get("must_contain", []) if p.lower() not in reply.lower()]
            forbidden = [p for p in case.get("must_not_contain", []) if p.lower() in reply.lower()]
            if case.get("reference_reply"):
                similarities.append(token_f1(reply, case["reference_reply"]))
            if missing:
                problems.append(f"missing {missing}")
            if forbidden:
                problems.append(f"forbidden {forbidden}")
            facts_ok += not missing
            forbidden_ok += not forbidden
        valid += res.format_valid
        if problems:
            decided = [intent] if targets.intent else []
            failures.append(
                {
                    "id": case["id"],
                    "message": case["message"],
                    "expected": _labelled(
                        [expected["intent"]] if targets.intent else [],
                        expected.get("entities", {}) if targets.entities else {},
                    ),
                    "got": _labelled(
                        [*decided, *(["abstained"] if abstained else [])],
                        {k: v for k, v in entities.items() if v is not None},
                    ),
                    "problems": "; ".join(problems),
                    "_weight": len(problems),
                }
            )
    failures.sort(key=lambda f: (-f.pop("_weight"), f["id"]))

    def rate(k: int) -> float:
        return k / n if n else float("nan")

    metrics: dict[str, Any] = {"format_valid": rate(valid)}
    if targets.intent:
        metrics["intent_accuracy"] = rate(intent_ok)
    if targets.entities:
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        metrics["entity_f1"] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    if targets.reply:
        metrics["required_facts"] = rate(facts_ok)
        metrics["forbidden_absent"] = rate(forbidden_ok)
    if targets.abstained:
        metrics["abstain_rate"] = rate(abstained_n)
        if targets.intent:  # "wrong" needs the intent: acted (did not abstain) on an intent that was not expected
            metrics["confident_wrong_rate"] = rate(confident_wrong)
    metrics["cases"] = n
    summary = {
        "metrics": metrics,
        "examples": failures[:WORST_EXAMPLES],
        "failed_cases": len(failures),
        # Why format_valid is below 1: the same broken template fails every case it renders, so a handful of
        # distinct messages explain most invalid cases (ties keep the order the cases first hit them).
        "format_errors": [
            {"step": step, "message": message, "count": count}
            for (step, message), count in errors.most_common(COMMON_ERRORS)
        ],
    }
    if similarities:  # no golden replies, no measurement (the gate reports it as not measured)
        summary["metrics"]["reply_similarity"] = sum(similarities) / len(similarities)
    return summary


def llm_accounting(runner: ChainRunner, results: list[CaseResult]) -> tuple[dict[str, float], dict[str, Any]]:
    """Token, call and cost totals for the summary metrics (zeros for an offline chain), and per-step totals."""
    from release_assets.chains.llm import sum_usage

    llm_steps = [s for s in runner.spec.steps if s.is_llm]
    per_step = {}
    for step in llm_steps:
        usages = [r.usage[step.id] for r in results if step.id in r.usage]
        totals = sum_usage(usages)
        totals["latency_ms"] = sum(u.get("latency_ms", 0.0) for u in usages)
        totals["cases"] = len(usages)
        per_step[step.id] = totals
    metrics = sum_usage(list(per_step.values()))
    if not any(s.llm and s.llm.price_per_1k for s in llm_steps):
        metrics.pop("cost_usd", None)
    return metrics, per_step


def evaluate(runner: ChainRunner, cases: list[dict[str, Any]]) -> tuple[dict[str, Any], list[CaseResult]]:
    requests = to_requests(cases)
    start = time.perf_counter()
    results = runner.run(requests)
    elapsed = time.perf_counter() - start
    summary = score(cases, results, runner.spec.evaluation)
    if runner.has_llm:
        # Re-running cases one at a time would pay for every LLM call again (or time only the cache): per-case
        # latency comes from this run instead, with each call's model latency (the original one on a cache hit,
        # so a cached re-evaluation reports the same numbers) plus the case's share of the offline steps.
        per_case = [sum(u.get("latency_ms", 0.0) for u in r.usage.values()) / 1000 for r in results]
        if per_case:
            summary["metrics"].update(percentiles_ms(per_case))
    else:
        # Batched throughput is what evaluation costs; one-at-a-time latency is what a customer waits, measured
        # so that other processes' load does not count (evaluation/latency.py).
        from release_assets.evaluation.latency import measure_latency

        summary["metrics"].update(measure_latency(lambda request: runner.run([request]), requests[:LATENCY_SAMPLES]))
    summary["metrics"]["cases_per_second"] = len(requests) / elapsed if elapsed else float("inf")
    totals, per_step = llm_accounting(runner, results)
    summary["metrics"].update(totals)
    if per_step:
        summary["llm_steps"] = per_step
    return summary, results


def repeat_outcomes(
    uncached: ChainRunner, cases: list[dict[str, Any]], first: list[CaseResult], repeats: int
) -> dict[str, Any]:
    """Run the chain ``repeats - 1`` more times without the response cache and report the cases whose outcome
    (the mapped intent and the reply step's output) changes between runs: a non-deterministic binding must be
    stable to be gated at all."""
    from release_assets.promotion.flaky import flaky_cases

    targets = _Targets(uncached.spec.evaluation)

    def outcome(res: CaseResult) -> str:
        return json.dumps(targets.outcome(res), sort_keys=True)

    runs = {case["id"]: [outcome(res)] for case, res in zip(cases, first, strict=True)}
    requests = to_requests(cases)
    for _ in range(repeats - 1):
        for case, res in zip(cases, uncached.run(requests), strict=True):
            runs[case["id"]].append(outcome(res))
    flaky = flaky_cases(runs)
    by_id = {c["id"]: c for c in cases}
    return {
        "flaky_cases": [{"id": i, "message": by_id[i]["message"], "outcomes": len(set(runs[i]))} for i in flaky[:10]],
        "metrics_extra": {"flaky_rate": len(flaky) / len(cases) if cases else float("nan"), "repeats": repeats},
    }


def _trace(path: Path, spec: Any, cases: list[dict[str, Any]], results: list[CaseResult], golden: Path) -> None:
    """The golden run as the same OpenTelemetry spans serving writes (a request span per case, a child per step),
    redacted, into the evaluation's own folder: lineage from the golden file to each answer, readable by the
    same tools as live traces. Written to the artifact only; no collector is called during a build."""
    from release_assets.hashing import sha256_file
    from release_assets.serving.traces import Tracing, trace_golden_run

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
    from release_assets.chains.build import KB_FILE
    from release_assets.chains.spec import load_chain
    from release_assets.evaluation import report
    from release_assets.models.registry import MODEL_KINDS

    predictors = {name: MODEL_KINDS[kind].load(path) for name, (kind, path) in model_dirs.items()}
    spec, schemas = load_chain(chain_artifact / "chain", {n: p.labels for n, p in predictors.items()}, chain_file)
    kb = load_knowledge_base(chain_artifact / KB_FILE)
    cases = load_cases(golden_path, spec.evaluation)
    runner = ChainRunner(spec, schemas, predictors, kb, llm_cache_dir=llm_cache_dir)
    summary, results = evaluate(runner, cases)
    _trace(out_dir / "traces.jsonl", spec, cases, results, golden_path)
    if repeats > 1:
        extra = repeat_outcomes(ChainRunner(spec, schemas, predictors, kb), cases, results, repeats)
        summary["metrics"].update(extra.pop("metrics_extra"))
        summary.update(extra)
    with (out_dir / "cases.jsonl").open("w") as fh:
        for case, res in zip(cases, results, strict=True):
            row = {"id": case["id"], "outputs": res.outputs, "errors": res.errors}
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
    return summary
