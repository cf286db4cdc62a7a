"""The judge: each golden reply scored on the rubrics of the chain's ``judge:`` section (``chains/schema.JudgeSpec``)
against the facts it was given, by the trained judge model (onnxruntime, no endpoint) or an OpenAI-compatible LLM.

Every case gets, per rubric, a score in [0, 1], a verdict (score >= the rubric's threshold) and a one-line reason.
Answers are cached by the digest of what determines them (the rubric's template, the message, the facts, the reply
and the judge: the model's file digests, or the LLM's model and parameters), so a case whose reply did not change
is never judged twice. A case the judge could not answer (endpoint down, time-out, malformed answer after its
repair attempts) is recorded with the reason and makes the judge's gates inconclusive: never a silent pass.

The facts a reply was given are found by rendering the reply step's template again with a knowledge base that
records which entries it reads (the same context the run had, so the same entries), plus the output fields of the
steps ``facts_from`` names, as ``field: value`` sentences.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from release_assets.chains.llm.cache import ResponseCache
from release_assets.chains.llm.step import run_llm_step
from release_assets.chains.render import TemplateError, render, render_string
from release_assets.chains.runner import CaseResult, KnowledgeBase
from release_assets.chains.schema import ChainSpec, JudgeSpec, StepSpec
from release_assets.core.hashing import sha256_file

WORST_CASES = 10
JUDGE_BINDING_VERSION = "judge-model/1"  # part of the trained judge's cache key: bump when its meaning changes


def is_judge_model(predictor: Any) -> bool:
    """A trained judge (models/judge_model.OnnxJudgePredictor, or anything answering like it)."""
    return hasattr(predictor, "rubrics") and hasattr(predictor, "scores") and hasattr(predictor, "reason")


class JudgeAnswer(BaseModel):
    """What an LLM judge must answer, per rubric: validated, and asked again with the error when it is not."""

    model_config = ConfigDict(extra="ignore")
    score: float = Field(ge=0, le=1)
    reason: str = Field(min_length=1, max_length=400)


@dataclass(frozen=True)
class JudgeItem:
    """One reply to judge: the customer's message, the facts the reply was given, the reply."""

    id: str
    message: str
    facts: list[str]
    reply: str


@dataclass
class Judgement:
    """One item's scores per rubric, or why the judge could not give them."""

    id: str
    scores: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    cache_hits: int = 0
    lookups: int = 0

    def verdicts(self, spec: JudgeSpec) -> dict[str, str]:
        return {r: "pass" if s >= spec.rubrics[r].threshold else "fail" for r, s in self.scores.items()}

    def overall(self, spec: JudgeSpec) -> str | None:
        """pass when every rubric passes; None when the judge could not answer."""
        if self.error is not None:
            return None
        return "pass" if all(v == "pass" for v in self.verdicts(spec).values()) else "fail"

    def worst(self, spec: JudgeSpec) -> tuple[str, float, str]:
        """The rubric furthest below (or least above) its threshold, its score and reason."""
        rubric = min(self.scores, key=lambda r: self.scores[r] - spec.rubrics[r].threshold)
        return rubric, self.scores[rubric], self.reasons[rubric]

    def record(self, spec: JudgeSpec) -> dict[str, Any]:
        """What the case's row, trace and report carry."""
        if self.error is not None:
            return {"verdict": "inconclusive", "error": self.error}
        rubric, score, reason = self.worst(spec)
        verdict = self.overall(spec)
        return {
            "verdict": verdict,
            "score": round(min(self.scores.values()), 4),
            "reason": f"{rubric}: {reason}"
            if verdict == "fail"
            else f"passes every rubric (lowest: {rubric} {score:.2f})",
            "rubrics": {
                r: {"score": round(s, 4), "verdict": v}
                for (r, s), v in zip(self.scores.items(), self.verdicts(spec).values(), strict=True)
            },
        }


class _ReadRecorder(dict):
    """The knowledge base's facts, noting which entries a template reads (by attribute or by key)."""

    def __init__(self, facts: dict[str, str]) -> None:
        super().__init__(facts)
        self.read: list[str] = []

    def __getitem__(self, key: Any) -> Any:
        value = super().__getitem__(key)
        if key not in self.read:
            self.read.append(key)
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


def reply_facts(spec: ChainSpec, kb: KnowledgeBase, message: str, attachment: bool, res: CaseResult) -> list[str]:
    """The facts ``res``'s reply was given: the knowledge-base sentences its step's template reads in this case's
    context, then the ``facts_from`` steps' output fields (``order_id: 12345``)."""
    assert spec.judge is not None and spec.directory is not None
    target = spec.evaluation.target("reply")
    assert target is not None, "spec_checks requires evaluation.reply with a judge"
    step = spec.step(target[0])
    earlier = spec.steps[: spec.steps.index(step)]
    recorder = _ReadRecorder(kb.facts)
    context: dict[str, Any] = {"message": message, "attachment": attachment, "kb": recorder, "products": kb.products}
    context |= {s.id: res.outputs[s.id] for s in earlier if s.id in res.outputs}
    # A template that failed in the run fails here too: its facts are what it read before failing.
    with contextlib.suppress(TemplateError):
        name = render_string(spec.directory, step.template, context) if "{{" in step.template else step.template
        render(spec.directory, name, context)
    facts = [kb.facts[k] for k in recorder.read]
    for step_id in spec.judge.facts_from:
        for name, value in (res.outputs.get(step_id) or {}).items():
            if value not in (None, "") and not isinstance(value, bool):
                facts.append(f"{name}: {value}")
    return facts


def model_digest(model_dir: Path) -> str:
    """The trained judge's identity in cache keys: the digests of its files."""
    files = sorted(p for p in Path(model_dir).iterdir() if p.is_file())
    return json.dumps({p.name: sha256_file(p) for p in files}, sort_keys=True)


class Judge:
    """Scores items on the rubrics of ``spec`` with its backend; ``template_dir`` holds the rubric templates."""

    def __init__(
        self,
        spec: JudgeSpec,
        template_dir: Path,
        predictor: Any = None,
        model_dir: Path | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.spec, self.template_dir, self.cache_dir = spec, template_dir, cache_dir
        self.templates = {r: (template_dir / rubric.template).read_text() for r, rubric in spec.rubrics.items()}
        self.predictor = predictor
        if spec.by_model:
            if predictor is None or model_dir is None:
                raise ValueError("judge backend model: no judge model was loaded")
            unknown = sorted(set(spec.rubrics) - set(predictor.rubrics))
            if unknown:
                raise ValueError(
                    f"judge.rubrics.{unknown[0]}: the judge model was trained on {', '.join(predictor.rubrics)} only"
                )
            self.identity = model_digest(model_dir)

    def judge(self, items: Sequence[JudgeItem]) -> list[Judgement]:
        return self._by_model(items) if self.spec.by_model else self._by_llm(items)

    # -- the trained judge --------------------------------------------------------------------------------------
    def _by_model(self, items: Sequence[JudgeItem]) -> list[Judgement]:
        cache = ResponseCache(self.cache_dir) if self.cache_dir is not None else None
        out = [Judgement(item.id) for item in items]
        todo: list[tuple[int, str, str]] = []  # (item, rubric, cache key) not in the cache
        for i, item in enumerate(items):
            for rubric in self.spec.rubrics:
                key = ResponseCache.key(
                    {
                        "judge": JUDGE_BINDING_VERSION,
                        "model": self.identity,
                        "rubric": [rubric, self.templates[rubric]],
                        "case": [item.message, item.facts, item.reply],
                    }
                )
                out[i].lookups += 1
                hit = cache.get(key) if cache is not None else None
                if hit is not None:
                    answer = json.loads(hit["text"])
                    out[i].scores[rubric], out[i].reasons[rubric] = answer["score"], answer["reason"]
                    out[i].cache_hits += 1
                else:
                    todo.append((i, rubric, key))
        pending = sorted({i for i, _, _ in todo})
        if pending:
            rows = [asdict(items[i]) for i in pending]
            scores, found = self.predictor.scores(rows)
            row_of = {i: j for j, i in enumerate(pending)}
            rubric_index = {r: k for k, r in enumerate(self.predictor.rubrics)}
            for i, rubric, key in todo:
                j = row_of[i]
                score = float(scores[j, rubric_index[rubric]])
                reason = self.predictor.reason(rubric, found[j])
                out[i].scores[rubric], out[i].reasons[rubric] = score, reason
                if cache is not None:
                    cache.put(
                        key, {"binding": JUDGE_BINDING_VERSION, "text": json.dumps({"score": score, "reason": reason})}
                    )
        return out

    # -- an LLM judge -------------------------------------------------------------------------------------------
    def _by_llm(self, items: Sequence[JudgeItem]) -> list[Judgement]:
        out = [Judgement(item.id) for item in items]
        for rubric in self.spec.rubrics:
            step = StepSpec(
                id=f"judge_{rubric}",
                template=self.spec.rubrics[rubric].template,
                binding=self.spec.backend,
                output={"score": "float", "reason": "str"},
                llm=self.spec.llm,
            )
            prompts = [
                render(
                    self.template_dir,
                    self.spec.rubrics[rubric].template,
                    {"message": i.message, "facts": i.facts, "reply": i.reply},
                )
                for i in items
            ]
            outcomes = run_llm_step(step, JudgeAnswer, prompts, [i.id for i in items], self.cache_dir)
            for judgement, outcome in zip(out, outcomes, strict=True):
                judgement.lookups += 1
                judgement.cache_hits += int(
                    outcome.usage.get("cache_hits", 0) > 0 and not outcome.usage.get("llm_calls")
                )
                if outcome.error is not None or outcome.value is None:
                    judgement.error = judgement.error or f"{rubric}: {outcome.error or 'no answer'}"
                    continue
                judgement.scores[rubric] = float(outcome.value["score"])
                judgement.reasons[rubric] = " ".join(str(outcome.value["reason"]).split())[:200]
        return out


def summarise(spec: JudgeSpec, items: Sequence[JudgeItem], judgements: Sequence[Judgement]) -> dict[str, Any]:
    """The judge's part of the evaluation summary: pass rates per rubric, what it could not judge, the cache's
    hits, and the worst cases with their reasons (the failed check's table)."""
    answered = [j for j in judgements if j.error is None]
    failed = [j for j in judgements if j.error is not None]
    rates = {
        rubric: (sum(j.verdicts(spec)[rubric] == "pass" for j in answered) / len(answered) if answered else None)
        for rubric in spec.rubrics
    }
    by_id = {i.id: i for i in items}
    ranked = sorted(answered, key=lambda j: (min(j.scores.values()), j.id))
    worst = []
    for j in ranked[:WORST_CASES]:
        rubric, score, reason = j.worst(spec)
        worst.append(
            {
                "id": j.id,
                "reply": by_id[j.id].reply[:160],
                "rubric": rubric,
                "score": round(score, 3),
                "verdict": j.overall(spec),
                "reason": reason,
            }
        )
    lookups = sum(j.lookups for j in judgements)
    overall = sum(j.overall(spec) == "pass" for j in answered) / len(answered) if answered else None
    return {
        "backend": spec.backend,
        "cases": len(judgements),
        "answered": len(answered),
        "unanswered": len(failed),
        "first_error": failed[0].error if failed else None,
        "pass_rates": rates,
        "pass_rate": overall,
        "thresholds": {r: s.threshold for r, s in spec.rubrics.items()},
        "cache": {"lookups": lookups, "hits": sum(j.cache_hits for j in judgements)},
        "worst": worst,
    }


def judge_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """``judge_<rubric>`` pass rates and ``judge_pass_rate`` for the evaluation's metrics, measured only when the
    judge answered every case (otherwise the gates report why they cannot decide)."""
    if summary["unanswered"] or not summary["cases"]:
        return {}
    return {"judge_pass_rate": summary["pass_rate"], **{f"judge_{r}": v for r, v in summary["pass_rates"].items()}}
