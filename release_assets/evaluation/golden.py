"""Score a prompt chain on its golden suite: format validity, intent accuracy, entity F1, facts, latency.

Which step output each golden field is compared with is the chain's own ``evaluation:`` mapping
(:class:`~release_assets.chains.schema.EvaluationSpec`); nothing here knows a step by name, and a metric whose field
is not mapped is left out of the summary (its gate then reports it as not measured).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from typing import Any

from release_assets.chains.llm import sum_usage
from release_assets.chains.runner import CaseResult, ChainRunner
from release_assets.chains.schema import EvaluationSpec
from release_assets.evaluation.breaker import BreakerSettings, run_with_breaker
from release_assets.evaluation.golden_inputs import to_requests
from release_assets.evaluation.latency import measure_latency
from release_assets.evaluation.metrics import percentiles_ms
from release_assets.promotion.flaky import flaky_cases

WORST_EXAMPLES = 10
COMMON_ERRORS = 5
_TOKENS = re.compile(r"[a-z0-9]+(?:['.-][a-z0-9]+)*")
LATENCY_SAMPLES = 50


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


def semantic_similarities(embedder: Any, cases: list[dict[str, Any]], replies: list[str]) -> dict[str, float]:
    """Cosine similarity of each reply with its case's ``reference_reply`` in the embedding model's space, by case
    id (cases without a reference reply are not measured). A paraphrase of the reference scores high where token
    F1 does not; a reply that negates it scores high too, which only the fact checks and the judge catch."""
    pairs = [
        (c["id"], reply, c["reference_reply"])
        for c, reply in zip(cases, replies, strict=True)
        if c.get("reference_reply")
    ]
    if not pairs:
        return {}
    values = embedder.similarity([p[1] for p in pairs], [p[2] for p in pairs])
    return {case_id: round(float(v), 6) for (case_id, _, _), v in zip(pairs, values, strict=True)}


def score(
    cases: list[dict[str, Any]],
    results: list[CaseResult],
    evaluation: EvaluationSpec | None = None,
    embedder: Any = None,
) -> dict[str, Any]:
    """Compare each result with its case through ``evaluation`` (default: nothing mapped, so only format
    validity is measured). ``embedder``: the chain's embedding model, which adds ``semantic_similarity``.

    ``case_scores`` holds each case's own value of every metric a case can score (1.0 or 0.0 for a rate), by case
    id: what the paired regression gate compares with the champion's, case by case."""
    targets = _Targets(evaluation or EvaluationSpec())
    n = len(cases)
    similarities = []
    case_scores: dict[str, dict[str, float]] = {}
    semantic = (
        semantic_similarities(embedder, cases, [targets.reply_of(r) for r in results])
        if embedder is not None and targets.reply
        else {}
    )
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
        own = case_scores[case["id"]] = {"format_valid": float(res.format_valid)}
        if not res.format_valid:
            problems.append("format: " + "; ".join(f"{k}: {v}" for k, v in res.errors.items()))
        if targets.intent:
            intent_ok += intent == expected["intent"]
            own["intent_accuracy"] = float(intent == expected["intent"])
            if targets.abstained:
                own["confident_wrong_rate"] = float(intent != expected["intent"] and not abstained)
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
            own["entity_f1"] = 2 * t / (2 * t + f_p + f_n) if t + f_p + f_n else 1.0
            if f_p or f_n:
                problems.append("entities")
        if targets.reply:
            missing = [p for p in case.get("must_contain", []) if p.lower() not in reply.lower()]
            forbidden = [p for p in case.get("must_not_contain", []) if p.lower() in reply.lower()]
            if case.get("reference_reply"):
                similarities.append(token_f1(reply, case["reference_reply"]))
                own["reply_similarity"] = similarities[-1]
            if case["id"] in semantic:
                own["semantic_similarity"] = semantic[case["id"]]
            if missing:
                problems.append(f"missing {missing}")
            if forbidden:
                problems.append(f"forbidden {forbidden}")
            facts_ok += not missing
            forbidden_ok += not forbidden
            own["required_facts"], own["forbidden_absent"] = float(not missing), float(not forbidden)
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
    summary: dict[str, Any] = {
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
    if semantic:
        summary["metrics"]["semantic_similarity"] = sum(semantic.values()) / len(semantic)
    summary["case_scores"] = case_scores
    return summary


def intent_outcomes(
    cases: list[dict[str, Any]], results: list[CaseResult], evaluation: EvaluationSpec | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """Each case's expected intent, the intent the chain decided and whether it abstained (asked instead of
    acting), read through ``evaluation`` as :func:`score` reads them; and whether the chain maps an abstain
    decision at all. No cases when the chain maps no intent."""
    targets = _Targets(evaluation or EvaluationSpec())
    if not targets.intent:
        return [], bool(targets.abstained)
    rows = [
        {
            "expected": (case.get("expected") or {}).get("intent"),
            "got": targets.intent_of(res),
            "abstained": targets.abstained_of(res),
        }
        for case, res in zip(cases, results, strict=True)
    ]
    return rows, bool(targets.abstained)


def llm_accounting(runner: ChainRunner, results: list[CaseResult]) -> tuple[dict[str, float], dict[str, Any]]:
    """Token, call and cost totals for the summary metrics (zeros for an offline chain), and per-step totals."""

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


def embedding_model(runner: ChainRunner) -> Any:
    """The chain's embedding model (a used model that computes sentence embeddings), the first by member name,
    or None: what scores ``semantic_similarity``."""
    return next((p for _, p in sorted(runner.predictors.items()) if hasattr(p, "similarity")), None)


def evaluate(
    runner: ChainRunner, cases: list[dict[str, Any]], breaker: BreakerSettings | None = None
) -> tuple[dict[str, Any], list[CaseResult]]:
    """Run and score the golden suite. With a ``breaker`` (evaluation/breaker.py) the run stops once validation
    failures pass its rate: the results, the scores and the returned list cover the cases run, ``stopped_early``
    is 1 and ``breaker`` in the summary says what it saw."""
    requests = to_requests(cases)
    start = time.perf_counter()
    results, tripped = run_with_breaker(runner, requests, breaker)
    cases, requests = cases[: len(results)], requests[: len(results)]
    elapsed = time.perf_counter() - start
    summary = score(cases, results, runner.spec.evaluation, embedding_model(runner))
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
        summary["metrics"].update(measure_latency(lambda request: runner.run([request]), requests[:LATENCY_SAMPLES]))
    summary["metrics"]["cases_per_second"] = len(requests) / elapsed if elapsed else float("inf")
    totals, per_step = llm_accounting(runner, results)
    summary["metrics"].update(totals)
    if breaker is not None:
        summary["metrics"]["stopped_early"] = float(tripped is not None)
    if tripped is not None:
        summary["breaker"] = tripped
    if per_step:
        summary["llm_steps"] = per_step
    return summary, results


def repeat_outcomes(
    uncached: ChainRunner, cases: list[dict[str, Any]], first: list[CaseResult], repeats: int
) -> dict[str, Any]:
    """Run the chain ``repeats - 1`` more times without the response cache and report the cases whose outcome
    (the mapped intent and the reply step's output) changes between runs: a non-deterministic binding must be
    stable to be gated at all."""

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
