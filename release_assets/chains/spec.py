"""The prompt-chain config (``prompts/<chain>/chain.yaml``): steps, templates, bindings and output schemas.

Loading validates everything that can be checked before a single case runs: every template compiles, every
variable a template reads is provided by the message or an earlier step, every step output it reads is a declared
field, every binding names a model the release declares, every output schema compiles to a pydantic model, and
every step output the golden suite is scored against (``evaluation:``) exists.
Every refusal is a ChainSpecError whose one-line message names the file, the step and, for a template, the line.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from release_assets.chains.render import (
    Scope,
    TemplateError,
    TemplateNotFoundError,
    check_pattern,
    check_template,
    environment,
    field_reads,
)
from release_assets.manifest import validation_problems
from release_assets.textfiles import read_yaml

CHAIN_FILE = "chain.yaml"
LLM_BINDINGS = {"llm:openai", "llm:transformers"}
# Used to redact a `redact:` name from prompt text when the step declares no pattern of that name.
REDACT_PATTERNS = {
    "email": r"[\w.+-]+@[\w-]+\.[\w.-]+\w",
    "phone": r"\+?\d[\d ()-]{7,}\d",
}
# Keys that look like a credential: a key belongs in the environment, never in a versioned chain file.
SECRET_KEYS = {"api_key", "apikey", "key", "token", "secret", "password", "authorization"}
# What ChainRunner.run puts in every template's context, besides the outputs of the steps that ran before.
BASE_CONTEXT = {"message", "attachment", "kb", "products"}
SCALARS: dict[str, type] = {"str": str, "float": float, "int": int, "bool": bool}


class ChainSpecError(ValueError):
    """A chain config that cannot run; the message names the file and the field."""


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["str", "float", "int", "bool", "enum"] = "str"
    optional: bool = False
    enum: list[str] | None = None
    enum_from: str | None = None  # "<model member>.labels": the values a classifier can emit


class PriceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: float = Field(ge=0)  # USD per 1000 prompt tokens
    output: float = Field(ge=0)  # USD per 1000 completion tokens


class LLMSpec(BaseModel):
    """The ``llm:`` mapping of a step bound to ``llm:openai`` or ``llm:transformers``."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_tokens: int = Field(default=512, gt=0)
    seed: int | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)
    backoff_s: float = Field(default=0.5, ge=0)  # first retry delay; doubles per attempt, with jitter
    schema_retries: int = Field(default=1, ge=0, le=5)
    concurrency: int = Field(default=4, ge=1, le=64)
    cache: bool = True
    price_per_1k: PriceSpec | None = None
    redact: list[str] = Field(default_factory=list)
    response_format: Literal["json_schema", "json_object", "none"] = "json_schema"
    # llm:transformers only
    path: str | None = None
    max_new_tokens: int = Field(default=128, gt=0)
    do_sample: bool = False

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if str(key).lower() in SECRET_KEYS:
                    # The message names the field only: echoing the value would leak the key into logs.
                    raise ValueError(
                        f"`{key}` is not allowed: never put a credential in chain.yaml; name the environment "
                        "variable that holds it with `api_key_env`"
                    )
        return data


class ClarifySpec(BaseModel):
    """The ``clarify:`` mapping of a template step: when to ask a question instead of acting on the decision.

    Declared in the chain, not in code: which intents need which entities is a support policy, and the release
    that changes it is one YAML edit that the golden suite then measures.
    """

    model_config = ConfigDict(extra="forbid")
    template: str  # rendered with `clarify.missing` and `clarify.unsure` (CLARIFY_FIELDS)
    # "<step>.<bool field>" refs: any of them true means an earlier step is not sure enough to act on
    when: list[str] = Field(default_factory=list)
    # <value an earlier step decided>: [<entity field of an earlier step>, ...] it cannot be acted on without
    requires: dict[str, list[str]] = Field(default_factory=dict)


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    template: str
    binding: str
    output: dict[str, FieldSpec | str]
    patterns: dict[str, str] = Field(default_factory=dict)
    catalogue: str | None = None
    attachment: str | None = None  # e.g. vision:vision_model reads an attached image sequence ...
    attachment_field: str = "order_id"  # ... into this output field
    escalate_intents: list[str] = Field(default_factory=list)
    min_score: float | None = Field(default=None, ge=0, le=1)  # retrieve only: below it, no fact (abstain)
    # classifier only: below it the step outputs `unsure: true`; "model" reads the threshold the model's trainer
    # chose on its validation split (a number overrides it, e.g. 0 never abstains)
    min_confidence: float | Literal["model"] | None = Field(default=None)
    clarify: ClarifySpec | None = None  # template only: ask instead of acting (see ClarifySpec)
    llm: LLMSpec | None = None  # only for llm:openai / llm:transformers bindings

    @property
    def is_llm(self) -> bool:
        return self.binding in LLM_BINDINGS

    @property
    def binding_kind(self) -> str:
        return self.binding.split(":", 1)[0]

    @property
    def binding_target(self) -> str | None:
        return self.binding.split(":", 1)[1] if ":" in self.binding else None

    def fields(self) -> dict[str, FieldSpec]:
        """Output fields, accepting the shorthand ``name: float?`` for ``{type: float, optional: true}``."""
        out = {}
        for name, spec in self.output.items():
            if isinstance(spec, str):
                base = spec.rstrip("?")
                if base not in SCALARS:
                    raise ValueError(f"output.{name}: unknown type {spec!r} (use str, float, int, bool)")
                spec = FieldSpec(type=base, optional=spec.endswith("?"))
            out[name] = spec
        return out


class EvaluationSpec(BaseModel):
    """Which step output each golden field is scored against (evaluation/golden.py reads nothing else).

    The chain names its own steps, so the mapping lives with them: a release whose steps are called differently
    is still one YAML file. A key left out is a metric not measured, not a metric that fails.
    """

    model_config = ConfigDict(extra="forbid")
    intent: str | None = None  # "<step>.<field>": compared with expected.intent -> intent_accuracy
    entities: str | None = None  # "<step>": its whole output compared with expected.entities -> entity_f1
    reply: str | None = None  # "<step>.<field>", a str: must_contain, must_not_contain, reference_reply
    # "<step>.<field>", a bool: the chain asked instead of acting -> abstain_rate, confident_wrong_rate
    abstained: str | None = None

    def target(self, key: str) -> tuple[str, str | None] | None:
        """``(step, field)`` a key is mapped to (field None for a whole step), or None when it is not mapped."""
        ref = getattr(self, key)
        if ref is None:
            return None
        step, _, name = ref.partition(".")
        return step, name or None


class ChainSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    steps: list[StepSpec] = Field(min_length=1)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    directory: Path | None = Field(default=None, exclude=True)

    def step(self, step_id: str) -> StepSpec:
        return next(s for s in self.steps if s.id == step_id)


BINDINGS = {"classifier", "vision", "patterns", "template", "llm", "retrieve"}
# What the offline bindings that build their output themselves emit (bindings.py): a declared field they never
# fill, or one they fill that is not declared, would fail every case at run time instead of once, here.
RETRIEVE_OUTPUT = {"fact": "str", "score": "float"}
TEMPLATE_OUTPUT = {"reply": "str", "escalate": "bool", "abstained": "bool"}  # escalate is optional
# What a template step with `clarify:` gives its clarifying template, besides the usual context: the entities
# missing (empty when unsure) and whether an earlier step was unsure.
CLARIFY_FIELDS = ("missing", "unsure")


def load_chain(
    directory: Path, model_labels: dict[str, list[str]], chain_file: str = CHAIN_FILE
) -> tuple[ChainSpec, dict[str, type]]:
    """Load and validate a chain; return it with one compiled output model per step.

    ``chain_file`` picks a variant in the same folder (e.g. ``chain.llm.yaml``), sharing its templates.
    """
    path = directory / chain_file
    if not path.exists():
        raise ChainSpecError(f"{path}: chain config not found")
    spec = _read_spec(path, directory)

    schemas: dict[str, type] = {}
    enums: dict[str, dict[str, list[str]]] = {}
    fields: dict[str, tuple[str, ...]] = {}  # the output fields of each step that runs before this one
    for i, step in enumerate(spec.steps):
        where = f"{path}: steps[{i}] ({step.id})"
        if step.id in fields:
            raise ChainSpecError(f"{where}: id: another step is already called {step.id!r}")
        _check_binding(step, model_labels, where)
        try:
            schemas[step.id] = output_model(step, model_labels)
        except (ValueError, KeyError) as exc:
            raise ChainSpecError(f"{where}: {exc}") from None
        scope = Scope(
            names=frozenset(BASE_CONTEXT | fields.keys()),
            fields=dict(fields),
            pending=frozenset(s.id for s in spec.steps[i:]),
        )
        for name, note in _template_names(directory, step, scope, enums, where).items():
            _check_template_file(directory, name, scope, note, where)
        if step.clarify is not None:
            _check_clarify(step, spec.steps[:i], enums, where)
            # The clarifying template also reads the `clarify` fields, and nothing else of it.
            asks = Scope(scope.names | {"clarify"}, {**scope.fields, "clarify": CLARIFY_FIELDS}, scope.pending)
            _check_template_file(directory, step.clarify.template, asks, " (named by clarify.template)", where)
        fields[step.id] = tuple(step.fields())
        enums[step.id] = enum_values(step, model_labels)
    _check_evaluation(spec, path)
    return spec, schemas


def _check_template_file(directory: Path, name: str, scope: Scope, note: str, where: str) -> None:
    try:
        check_template(directory, name, scope)
    except TemplateNotFoundError as exc:
        raise ChainSpecError(f"{where}: {exc}{note}") from None
    except TemplateError as exc:
        raise ChainSpecError(f"{where}: {exc}") from None


def _check_clarify(step: StepSpec, earlier: list[StepSpec], enums: dict[str, dict[str, list[str]]], where: str) -> None:
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


def _check_evaluation(spec: ChainSpec, path: Path) -> None:
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


def _read_spec(path: Path, directory: Path) -> ChainSpec:
    data = read_yaml(path, ChainSpecError)
    if not isinstance(data, dict):
        raise ChainSpecError(f"{path}: expected a mapping with `name` and `steps`")
    try:
        return ChainSpec.model_validate({**data, "directory": directory})
    except ValidationError as exc:
        raise ChainSpecError(f"{path}: {validation_problems(exc)}") from None


def _check_binding(step: StepSpec, model_labels: dict[str, list[str]], where: str) -> None:
    if step.binding_kind not in BINDINGS:
        raise ChainSpecError(f"{where}: binding: unknown binding {step.binding!r} (known: {sorted(BINDINGS)})")
    if step.binding_kind == "llm" or step.llm is not None:
        _check_llm(step, where)
    if step.min_score is not None and step.binding_kind != "retrieve":
        raise ChainSpecError(f"{where}: min_score: only a step with binding retrieve takes `min_score`")
    _check_abstain(step, where)
    if step.binding_kind == "retrieve":
        if step.binding != "retrieve":
            raise ChainSpecError(f"{where}: binding: retrieve searches the knowledge base and names no model")
        _check_output(step, RETRIEVE_OUTPUT, set(RETRIEVE_OUTPUT), where)
        if step.min_score is not None and not step.fields()["fact"].optional:
            raise ChainSpecError(f"{where}: output.fact: below min_score there is no fact, so declare `fact: str?`")
    elif step.binding_kind == "template":
        _check_output(step, TEMPLATE_OUTPUT, {"reply"}, where)
    model_ref = step.binding if ":" in step.binding and not step.is_llm else None
    for ref in filter(None, [model_ref, step.attachment]):
        target = ref.split(":", 1)[1]
        if target not in model_labels:
            raise ChainSpecError(f"{where}: binding {ref!r} names no model of this release ({sorted(model_labels)})")
    for name, pattern in step.patterns.items():
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ChainSpecError(f"{where}: patterns.{name}: invalid regular expression: {exc}") from None


def _check_abstain(step: StepSpec, where: str) -> None:
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


def _check_output(step: StepSpec, allowed: dict[str, str], required: set[str], where: str) -> None:
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


def _check_llm(step: StepSpec, where: str) -> None:
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


def _template_names(
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
    choices = [enums.get(sid, {}).get(name) for sid, name in reads]
    if not reads or not all(choices):
        return _pattern_files(directory, step.template, where)
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


def _pattern_files(directory: Path, pattern: str, where: str) -> dict[str, str]:
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


def enum_values(step: StepSpec, model_labels: dict[str, list[str]]) -> dict[str, list[str]]:
    out = {}
    for name, f in step.fields().items():
        if f.type == "enum":
            out[name] = list(f.enum or model_labels.get((f.enum_from or "").removesuffix(".labels"), []))
    return out


def output_model(step: StepSpec, model_labels: dict[str, list[str]]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for name, f in step.fields().items():
        if f.type == "enum":
            values = f.enum
            if f.enum_from:
                model = f.enum_from.removesuffix(".labels")
                if model not in model_labels:
                    raise KeyError(f"output.{name}.enum_from: no model {model!r}")
                values = model_labels[model]
            if not values:
                raise ValueError(f"output.{name}: an enum needs `enum` or `enum_from`")
            typ: Any = Literal[tuple(values)]
        else:
            typ = SCALARS[f.type]
        fields[name] = (typ | None, None) if f.optional else (typ, ...)
    return create_model(f"{step.id}_output", __config__=ConfigDict(extra="forbid", strict=False), **fields)
