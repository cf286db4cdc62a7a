"""Run a prompt chain over a batch of requests, step by step, validating every step's output."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from release_assets.chains import bindings, llm
from release_assets.chains.render import TemplateError, render, render_string
from release_assets.chains.schema import ChainSpec, StepSpec
from release_assets.manifest import validation_problems
from release_assets.models.trainers import Predictor


@dataclass
class ChainRequest:
    id: str
    message: str
    attachment: list[list[int]] | None = None  # a sequence of flat 8x8 digit images


@dataclass
class CaseResult:
    id: str
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # Per step: latency_ms for every step (a batch step's time is shared evenly); tokens and calls for LLM steps.
    usage: dict[str, dict[str, float]] = field(default_factory=dict)
    traces: list[dict[str, Any]] = field(default_factory=list)  # one record per LLM call, redacted

    @property
    def format_valid(self) -> bool:
        return not self.errors


@dataclass
class KnowledgeBase:
    facts: dict[str, str]
    products: list[str]
    # Fact id -> the help-centre headings it sits under: searched by the retrieve binding, never quoted.
    questions: dict[str, list[str]] = field(default_factory=dict)
    # Product -> the partial names customers use for it ("rain jacket"), matched by the patterns binding.
    aliases: dict[str, list[str]] = field(default_factory=dict)


class StepObserver(Protocol):
    """Told about every step each request ran (serving/traces.py turns these into spans)."""

    def on_step(
        self,
        request_id: str,
        step_id: str,
        rendered: str | None,
        raw: Any,
        output: dict[str, Any] | None,
        error: str | None,
        latency_ms: float,
        binding: str,
    ) -> None: ...


class ChainRunner:
    def __init__(
        self,
        spec: ChainSpec,
        schemas: dict[str, type[BaseModel]],
        predictors: dict[str, Predictor],
        kb: KnowledgeBase,
        llm_cache_dir: Path | None = None,
    ) -> None:
        assert spec.directory is not None, "a chain spec must be loaded from a folder"
        self.spec, self.schemas, self.predictors, self.kb = spec, schemas, predictors, kb
        self.directory: Path = spec.directory  # where its templates are
        self.llm_cache_dir = llm_cache_dir  # None: every LLM call goes to the model
        # The functions of python steps, imported now: a chain whose code cannot be imported never starts.
        self.functions = bindings.step_functions(spec)

    @property
    def has_llm(self) -> bool:
        return any(s.is_llm for s in self.spec.steps)

    def run(self, requests: list[ChainRequest], observer: StepObserver | None = None) -> list[CaseResult]:
        results = [CaseResult(r.id) for r in requests]
        # Exactly spec.BASE_CONTEXT, plus each step's output as it runs: load_chain checks templates against these.
        contexts = [
            {
                "message": r.message,
                "attachment": r.attachment is not None,
                "kb": self.kb.facts,
                "products": self.kb.products,
            }
            for r in requests
        ]
        for step in self.spec.steps:
            live = [i for i, res in enumerate(results) if not res.errors]
            t0 = time.perf_counter()
            rendered: list[str | None] | None = [] if observer is not None else None  # kept only when observed
            raw = self._run_step(
                step, [requests[i] for i in live], [contexts[i] for i in live], results, live, rendered
            )
            if live and not step.is_llm:
                share_ms = (time.perf_counter() - t0) * 1000 / len(live)
                for i in live:
                    results[i].usage[step.id] = {"latency_ms": share_ms}
            for i, value in zip(live, raw, strict=True):
                if value is None:
                    continue
                try:
                    validated = self.schemas[step.id].model_validate(value).model_dump()
                except ValidationError as exc:
                    results[i].errors[step.id] = validation_problems(exc)
                    continue
                results[i].outputs[step.id] = validated
                contexts[i][step.id] = validated
            if observer is not None:
                self._observe(observer, step, live, rendered or [], raw, results)
        return results

    @staticmethod
    def _observe(
        observer: StepObserver,
        step: StepSpec,
        live: list[int],
        rendered: list[str | None],
        raw: list[dict[str, Any] | None],
        results: list[CaseResult],
    ) -> None:
        """One call per request that ran ``step``. An LLM step's ``raw`` is its last call's trace record (already
        redacted, with the answer text under ``raw``): the parsed value alone would hide what the model said."""
        for j, i in enumerate(live):
            res = results[i]
            answer: Any = raw[j]
            if step.is_llm:
                answer = next((t for t in reversed(res.traces) if t.get("step") == step.id), None)
            latency = res.usage.get(step.id, {}).get("latency_ms", 0.0)
            output, error = res.outputs.get(step.id), res.errors.get(step.id)
            observer.on_step(res.id, step.id, rendered[j], answer, output, error, latency, step.binding)

    def _render(self, step: StepSpec, context: dict[str, Any]) -> str:
        name = render_string(self.directory, step.template, context) if "{{" in step.template else step.template
        return render(self.directory, name, context)

    def _run_step(
        self,
        step: StepSpec,
        requests: list[ChainRequest],
        contexts: list[dict[str, Any]],
        results: list[CaseResult],
        live: list[int],
        rendered: list[str | None] | None = None,
    ) -> list[dict[str, Any] | None]:
        texts: list[str | None] = []
        for ctx, i in zip(contexts, live, strict=True):
            try:
                texts.append(self._render(step, ctx))
            except TemplateError as exc:
                results[i].errors[step.id] = str(exc)
                texts.append(None)
        if rendered is not None:  # the observer's input: what each request's template rendered to
            rendered.extend(texts)
        ok = [j for j, t in enumerate(texts) if t is not None]
        ok_texts = [t for t in texts if t is not None]  # texts[j] for j in ok
        raw: list[dict[str, Any] | None] = [None] * len(texts)

        if step.binding_kind == "classifier":
            target = step.binding_target
            assert target is not None, "spec_checks requires classifier:<model>"
            outs = bindings.classify(step, ok_texts, self.predictors[target])
            for j, out in zip(ok, outs, strict=True):
                raw[j] = out
        elif step.binding_kind == "patterns":
            for j, text in zip(ok, ok_texts, strict=True):
                raw[j] = bindings.extract(step, text, self.kb.products if step.catalogue else [], self.kb.aliases)
        elif step.is_llm:
            outcomes = llm.run_llm_step(
                step,
                self.schemas[step.id],
                ok_texts,
                [results[live[j]].id for j in ok],
                self.llm_cache_dir,
            )
            for j, outcome in zip(ok, outcomes, strict=True):
                res = results[live[j]]
                res.usage[step.id] = outcome.usage
                res.traces.extend(outcome.traces)
                if outcome.error is not None:
                    res.errors[step.id] = outcome.error
                else:
                    raw[j] = outcome.value
        elif step.binding_kind == "python":
            function = self.functions[step.id]
            for j, text in zip(ok, ok_texts, strict=True):
                value, error = bindings.call_python(step, function, text, contexts[j])
                if error is not None:
                    results[live[j]].errors[step.id] = error
                raw[j] = value
        elif step.binding_kind == "retrieve":
            embedder = self.predictors[step.binding_target] if step.binding_target else None
            outs = bindings.retrieve(step, ok_texts, self.kb.facts, self.kb.questions, embedder)
            for j, out in zip(ok, outs, strict=True):
                raw[j] = out
        elif step.binding_kind == "template":
            # Escalate when an earlier step decided one of the listed values (e.g. intent == complaint).
            earlier = [s.id for s in self.spec.steps[: self.spec.steps.index(step)]]
            replies: dict[int, dict[str, Any]] = {j: {"reply": text} for j, text in zip(ok, ok_texts, strict=True)}
            for j, reply in replies.items():
                raw[j] = reply
                if "escalate" in step.output:  # optional: a chain that never escalates does not declare it
                    decided = {v for sid in earlier for v in contexts[j].get(sid, {}).values() if isinstance(v, str)}
                    reply["escalate"] = bool(decided & set(step.escalate_intents))
            # -- abstain (spec.ClarifySpec): ask a clarifying question instead of acting on a doubtful decision --
            if step.clarify is not None:
                for j, reply in replies.items():
                    asks = bindings.clarification(step, contexts[j], earlier)
                    reply["abstained"] = asks is not None
                    if asks is None:
                        continue
                    if "escalate" in step.output:
                        reply["escalate"] = False  # nothing is acted on, so nothing is escalated either
                    try:
                        context = {**contexts[j], "clarify": asks}
                        reply["reply"] = render(self.directory, step.clarify.template, context)
                    except TemplateError as exc:
                        results[live[j]].errors[step.id] = str(exc)
                        raw[j] = None
            # -- end abstain --
        if step.attachment and step.binding_kind in ("patterns", "llm"):
            # An LLM reads text only: an attached photo is still read by the release's vision model.
            pending = [(raw[j], requests[j].attachment) for j in ok]
            with_images = [(out, images) for out, images in pending if out is not None and images]
            reader = self.predictors[step.attachment.split(":", 1)[1]]
            read = bindings.read_sequences([images for _, images in with_images], reader)
            for (out, _), value in zip(with_images, read, strict=True):
                out[step.attachment_field] = value
        return raw
