"""What ``load_chain`` checks before a chain may run: every binding resolves, every template it can render exists,
compiles and reads only what that step can see, clarify and abstain settings agree with the steps they name, and
the golden-suite mapping names real step outputs. Each problem is one line naming chain.yaml or the template.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from pydantic import ValidationError

from release_assets.chains.render import (
    Scope,
    TemplateError,
    TemplateNotFoundError,
    check_pattern,
    check_template,
    environment,
    field_reads,
)
from release_assets.chains.schema import (
    BINDINGS,
    LLM_BINDINGS,
    PYTHON_BINDING,
    REDACT_PATTERNS,
    RETRIEVE_OUTPUT,
    TEMPLATE_OUTPUT,
    ChainSpec,
    ChainSpecError,
    EvaluationSpec,
    StepSpec,
)
from release_assets.core.hashing import module_file
from release_assets.core.textfiles import read_yaml
from release_assets.manifest import validation_problems
from release_assets.manifest.external_models import check_object_ref


def check_template_file(directory: Path, name: str, scope: Scope, note: str, where: str) -> None:
    try:
        check_template(directory, name, scope)
    except TemplateNotFoundError as exc:
        raise ChainSpecError(f"{where}: {exc}{note}") from None
    except TemplateError as exc:
        raise ChainSpecError(f"{where}: {exc}") from None


def check_clarify(step: StepSpec, earlier: list[StepSpec], enums: dict[str, dict[str, list[str]]], where: str) -> None:
    """`when` names earlier bool fields, `requires` maps values earlier steps can decide to their output fields:
    a typo in either would otherwise never ask (or always ask), silently."""
    assert step.clarify is not None
    steps = {s.id: s for s in earlier}
    for ref in step.clarify.when:
        step_id, _, name = ref.partition(".")
        declared = steps[step_id].fields() if step_id in steps else {}
        if name not in declared or declared[name].type != "bool":
            raise ChainSpecError(
                f"{where}: clarify.when: {ref!r} is not a bool output of an earlier step (e.g. classify_intent.unsure)"
            )
    decidable = {v for per_step in enums.values() for values in per_step.values() for v in values}
    entities = {name for s in earlier for name in s.fields()}
    for value, needed in step.clarify.requires.items():
        if value not in decidable:
            raise ChainSpecError(
                f"{where}: clarify.requires.{value}: no earlier step can decide {value!r} "
                f"(values: {', '.join(sorted(decidable)) or 'none'})"
            )
        unknown = [n for n in needed if n not in entities]
        if unknown:
            raise ChainSpecError(
                f"{where}: clarify.requires.{value}: {unknown[0]!r} is not an output field of an earlier step"
            )


_EXAMPLES = {
    "intent": "classify_intent.intent",
    "entities": "extract_entities",
    "reply": "generate_response.reply",
    "abstained": "generate_response.abstained",
}
# The type a mapped field must have: replies are searched for phrases, abstentions are counted.
_EVALUATION_TYPES = {"reply": "str", "abstained": "bool"}


def check_evaluation(spec: ChainSpec, path: Path) -> None:
    """Every ``evaluation:`` entry names a step and, except ``entities`` (a whole step), one of its fields."""
    steps = {s.id: s for s in spec.steps}
    for key in EvaluationSpec.model_fields:
        target = spec.evaluation.target(key)
        if target is None:
            continue
        where = f"{path}: evaluation.{key}: {getattr(spec.evaluation, key)!r}"
        step_id, name = target
        whole = key == "entities"
        if (name is None) != whole:
            form = "a step id (its output fields are the entities)" if whole else "<step>.<output field>"
            raise ChainSpecError(f"{where}: expected {form}, e.g. {_EXAMPLES[key]}")
        if step_id not in steps:
            raise ChainSpecError(f"{where}: no step {step_id!r} (steps: {', '.join(steps)})")
        if name is None:
            continue
        declared = steps[step_id].fields()
        if name not in declared:
            raise ChainSpecError(
                f"{where}: step {step_id} has no output field {name!r} (fields: {', '.join(declared)})"
            )
        want = _EVALUATION_TYPES.get(key)
        if want is not None and declared[name].type != want:
            # Replies are searched for phrases and compared word by word: only text can be; abstentions are counted.
            raise ChainSpecError(
                f"{where}: {step_id}.{name} is a {declared[name].type}, a {key} must be a {want} field"
            )


def read_spec(path: Path, directory: Path) -> ChainSpec:
    data = read_yaml(path, ChainSpecError)
    if not isinstance(data, dict):
        raise ChainSpecError(f"{path}: expected a mapping with `name` and `steps`")
    try:
        return ChainSpec.model_validate({**data, "directory": directory, "chain_file": path.name})
    except ValidationError as exc:
        raise ChainSpecError(f"{path}: {validation_problems(exc)}") from None


def check_binding(step: StepSpec, model_labels: dict[str, list[str]], where: str) -> None:
    if step.binding_kind not in BINDINGS:
        raise ChainSpecError(f"{where}: binding: unknown binding {step.binding!r} (known: {sorted(BINDINGS)})")
    if step.binding_kind == "llm" or step.llm is not None:
        check_llm(step, where)
    if step.min_score is not None and step.binding_kind != "retrieve":
        raise ChainSpecError(f"{where}: min_score: only a step with binding retrieve takes `min_score`")
    check_abstain(step, where)
    if step.retrieval is not None and step.binding_kind != "retrieve":
        raise ChainSpecError(f"{where}: retrieval: only a step with binding retrieve takes `retrieval`")
    if step.binding_kind == "retrieve":
        # `retrieve` (TF-IDF or BM25 over the knowledge base) or `retrieve:<model>`, a sentence_embedder of the
        # release (embedding, hybrid or trained retrieval): the model is named exactly when the method embeds.
        check_retrieval(step, where)
        check_output(step, RETRIEVE_OUTPUT, set(RETRIEVE_OUTPUT), where)
        if step.min_score is not None and not step.fields()["fact"].optional:
            raise ChainSpecError(f"{where}: output.fact: below min_score there is no fact, so declare `fact: str?`")
    elif step.binding_kind == "template":
        check_output(step, TEMPLATE_OUTPUT, {"reply"}, where)
    elif step.binding_kind == "python":
        check_python(step, where)
    model_ref = step.binding if ":" in step.binding and not step.is_llm and step.python_function is None else None
    for ref in filter(None, [model_ref, step.attachment]):
        target = ref.split(":", 1)[1]
        if target not in model_labels:
            raise ChainSpecError(f"{where}: binding {ref!r} names no model of this release ({sorted(model_labels)})")
    for name, pattern in step.patterns.items():
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ChainSpecError(f"{where}: patterns.{name}: invalid regular expression: {exc}") from None


def check_retrieval(step: StepSpec, where: str) -> None:
    spec = step.retrieval
    if spec is None:
        return
    if spec.embeds and step.binding_target is None:
        raise ChainSpecError(
            f"{where}: retrieval.method: {spec.method} needs an embedding model: bind `retrieve:<model>` to a "
            "sentence_embedder of the release"
        )
    if not spec.embeds and step.binding_target is not None:
        raise ChainSpecError(
            f"{where}: retrieval.method: {spec.method} uses no model, but the binding names "
            f"{step.binding_target!r}: bind plain `retrieve`, or choose method embedding, hybrid or trained"
        )


def check_python(step: StepSpec, where: str) -> None:
    """A python binding names a function whose module can be found; found, not imported: loading a chain (at
    `check`, in the server) runs none of the team's code. The function is imported when the chain is built or run."""
    ref = step.python_function or ""
    try:
        check_object_ref(ref)
    except ValueError:
        raise ChainSpecError(f"{where}: binding: {step.binding!r} is not `{PYTHON_BINDING}`") from None
    module = ref.partition(":")[0]
    if module_file(module) is None:
        raise ChainSpecError(
            f"{where}: binding: {step.binding!r} names no module {module!r} that can be found "
            "(is its package installed, or on PYTHONPATH?)"
        )


def check_abstain(step: StepSpec, where: str) -> None:
    """`min_confidence` comes with an `unsure: bool` output, `clarify:` with `abstained: bool`, and neither without
    the other: a flag nobody sets, or a threshold nobody can read, would look like a working abstain path."""
    if step.min_confidence is not None and step.binding_kind != "classifier":
        raise ChainSpecError(f"{where}: min_confidence: only a step with a classifier binding takes `min_confidence`")
    if isinstance(step.min_confidence, float) and not 0 <= step.min_confidence <= 1:
        raise ChainSpecError(f"{where}: min_confidence: {step.min_confidence:g} is outside [0, 1]")
    if step.clarify is not None and step.binding_kind != "template":
        raise ChainSpecError(f"{where}: clarify: only a step with binding template asks clarifying questions")
    try:
        declared = step.fields()
    except ValueError:
        return  # reported, with its field, when the output model compiles
    for flag, option, kind in (("unsure", "min_confidence", "classifier"), ("abstained", "clarify", "template")):
        if step.binding_kind != kind:
            continue
        has_option = getattr(step, option) is not None
        if has_option and (flag not in declared or declared[flag].type != "bool"):
            raise ChainSpecError(f"{where}: output.{flag}: a step with `{option}` outputs it; declare `{flag}: bool`")
        if flag in declared and not has_option:
            raise ChainSpecError(f"{where}: output.{flag}: only a step with `{option}` sets it")


def check_output(step: StepSpec, allowed: dict[str, str], required: set[str], where: str) -> None:
    """A binding that builds its own output (retrieve, template) fills exactly these fields, of these types."""
    try:
        declared = step.fields()
    except ValueError as exc:
        raise ChainSpecError(f"{where}: {exc}") from None
    shape = ", ".join(f"{k}: {v}" for k, v in allowed.items())
    missing = sorted(required - declared.keys())
    if missing:
        raise ChainSpecError(f"{where}: output.{missing[0]}: binding {step.binding} outputs {{{shape}}}; declare it")
    for name, f in declared.items():
        if allowed.get(name) != f.type:
            raise ChainSpecError(f"{where}: output.{name}: binding {step.binding} outputs only {{{shape}}}")


def check_llm(step: StepSpec, where: str) -> None:
    """Cross-field checks pydantic cannot express: which fields each LLM binding needs or refuses."""
    if not step.is_llm:
        if step.binding_kind == "llm":
            raise ChainSpecError(
                f"{where}: binding: unknown LLM binding {step.binding!r} (known: {sorted(LLM_BINDINGS)})"
            )
        raise ChainSpecError(f"{where}: llm: only a step with binding llm:openai or llm:transformers takes `llm:`")
    cfg = step.llm
    if cfg is None:
        raise ChainSpecError(f"{where}: llm: binding {step.binding} needs an `llm:` mapping (model, base_url, ...)")
    if step.binding == "llm:openai":
        if not cfg.model:
            raise ChainSpecError(f"{where}: llm.model: required for llm:openai (the model name the endpoint serves)")
        if not cfg.base_url:
            raise ChainSpecError(f"{where}: llm.base_url: required for llm:openai (e.g. http://localhost:8000/v1)")
        if not re.match(r"^https?://[^/\s]+", cfg.base_url):
            raise ChainSpecError(f"{where}: llm.base_url: {cfg.base_url!r} is not an http(s):// URL")
        if cfg.path is not None:
            raise ChainSpecError(f"{where}: llm.path: only for llm:transformers; llm:openai uses model and base_url")
    else:
        if not cfg.path:
            raise ChainSpecError(f"{where}: llm.path: required for llm:transformers (a local model folder)")
        for name in ("base_url", "api_key_env"):
            if getattr(cfg, name) is not None:
                raise ChainSpecError(f"{where}: llm.{name}: only for llm:openai; llm:transformers runs locally")
    outputs = set(step.output)
    for name in cfg.redact:
        if name not in outputs and name not in step.patterns and name not in REDACT_PATTERNS:
            raise ChainSpecError(
                f"{where}: llm.redact: {name!r} is neither an output field of this step nor a known pattern "
                f"(declare it under `patterns:` or use one of {sorted(REDACT_PATTERNS)})"
            )
    for name, pattern in step.patterns.items():
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ChainSpecError(f"{where}: patterns.{name}: invalid regular expression: {exc}") from None


def template_names(
    directory: Path, step: StepSpec, scope: Scope, enums: dict[str, dict[str, list[str]]], where: str
) -> dict[str, str]:
    """Every template file a step can render, each with a note on how its name arises (empty for a plain name).

    A step's template may itself be a template (``responses/{{ classify_intent.intent }}.j2``): when it reads
    only enum fields of earlier steps it is expanded over every value they can take, so a missing per-intent
    file fails at load time; otherwise any file under the folder it points to may be named, and each is checked.
    """
    if "{{" not in step.template:  # the runner renders a name only when it holds `{{`
        return {step.template: ""}
    try:
        tree = check_pattern(directory, step.template, scope)
    except TemplateError as exc:
        raise ChainSpecError(f"{where}: {exc}") from None
    reads = sorted(field_reads(tree) or ())
    found = [enums.get(sid, {}).get(name) for sid, name in reads]
    choices = [c for c in found if c]
    if not reads or len(choices) != len(found):
        return pattern_files(directory, step.template, where)
    template = environment(str(directory)).from_string(step.template)
    names: dict[str, str] = {}
    for values in itertools.product(*choices):
        context: dict[str, dict[str, str]] = {}
        for (sid, name), value in zip(reads, values, strict=True):
            context.setdefault(sid, {})[name] = value
        when = " and ".join(f"{sid}.{name} = {value!r}" for (sid, name), value in zip(reads, values, strict=True))
        try:
            name = template.render(context).strip()
        except Exception as exc:  # e.g. a filter that cannot take this value; the runner would fail the same way
            raise ChainSpecError(f"{where}: template: {step.template!r} fails when {when}: {exc}") from None
        names.setdefault(name, f" (template {step.template!r} names it when {when})")
    return dict(sorted(names.items()))


def pattern_files(directory: Path, pattern: str, where: str) -> dict[str, str]:
    """The files a free-form template name can reach: those under its literal folder with its literal ending."""
    prefix = re.split(r"\{[{%#]", pattern, maxsplit=1)[0]
    suffix = re.split(r"[}%#]\}", pattern)[-1]
    folder = directory / prefix.rpartition("/")[0]
    names = sorted(
        rel
        for rel in (p.relative_to(directory).as_posix() for p in folder.rglob("*") if p.is_file())
        if rel.startswith(prefix) and rel.endswith(suffix)
    )
    if not names:
        raise ChainSpecError(f"{where}: template: {pattern!r} can name no file (none in {folder} matches)")
    return {name: f" (template {pattern!r} can name it)" for name in names}


# What a rubric template is rendered with (evaluation/judge.py): the customer's message, the facts the reply was
# given (a list of sentences) and the reply.
JUDGE_CONTEXT = frozenset({"message", "facts", "reply"})


def check_judge(spec: ChainSpec, path: Path) -> None:
    """The ``judge:`` section: an LLM backend's settings, rubric templates that compile and read only the judge's
    context, and `facts_from` naming steps of this chain. (A `model` backend's judge_model is found among the
    chain's models when the evaluation runs: evaluation/chain_evaluation.py.)"""
    judge = spec.judge
    if judge is None:
        return
    where = f"{path}: judge"
    if spec.evaluation.reply is None:
        raise ChainSpecError(f"{where}: the judge reads the reply, so map it: evaluation.reply: <step>.<field>")
    if judge.by_model:
        if judge.llm is not None:
            raise ChainSpecError(f"{where}.llm: only the llm:openai backend takes `llm:`")
    else:
        step = StepSpec(id="judge", template="-", binding=judge.backend, output={"reason": "str"}, llm=judge.llm)
        check_llm(step, where)
    steps = {s.id for s in spec.steps}
    for i, step_id in enumerate(judge.facts_from):
        if step_id not in steps:
            raise ChainSpecError(f"{where}.facts_from[{i}]: no step {step_id!r} (steps: {', '.join(steps)})")
    scope = Scope(names=JUDGE_CONTEXT)
    directory = spec.directory or path.parent
    for name, rubric in judge.rubrics.items():
        check_template_file(directory, rubric.template, scope, f" (named by judge.rubrics.{name}.template)", where)
