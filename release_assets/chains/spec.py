"""The prompt-chain config (``prompts/<chain>/chain.yaml``): steps, templates, bindings and output schemas.

Loading validates everything that can be checked before a single case runs: every template compiles, every
variable a template reads is provided by the message or an earlier step, every binding names a model the release
declares, and every output schema compiles to a pydantic model.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from jinja2 import meta
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from release_assets.chains.render import TemplateError, compile_check, environment

CHAIN_FILE = "chain.yaml"
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


class ChainSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    steps: list[StepSpec] = Field(min_length=1)
    directory: Path | None = Field(default=None, exclude=True)

    def step(self, step_id: str) -> StepSpec:
        return next(s for s in self.steps if s.id == step_id)


BINDINGS = {"classifier", "vision", "patterns", "template"}


def load_chain(directory: Path, model_labels: dict[str, list[str]]) -> tuple[ChainSpec, dict[str, type]]:
    """Load and validate a chain; return it with one compiled output model per step."""
    path = directory / CHAIN_FILE
    if not path.exists():
        raise ChainSpecError(f"{path}: chain config not found")
    try:
        spec = ChainSpec.model_validate({**yaml.safe_load(path.read_text()), "directory": directory})
    except yaml.YAMLError as exc:
        raise ChainSpecError(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(".".join(str(p) for p in e["loc"]) + f": {e['msg']}" for e in exc.errors())
        raise ChainSpecError(f"{path}: {problems}") from None

    schemas: dict[str, type] = {}
    enums: dict[str, dict[str, list[str]]] = {}
    available = set(BASE_CONTEXT)
    for i, step in enumerate(spec.steps):
        where = f"{path}: steps[{i}] ({step.id})"
        _check_binding(step, model_labels, where)
        try:
            schemas[step.id] = output_model(step, model_labels)
        except (ValueError, KeyError) as exc:
            raise ChainSpecError(f"{where}: {exc}") from None
        for name in _template_names(directory, step, enums, where):
            try:
                needed = compile_check(directory, name)
            except TemplateError as exc:
                raise ChainSpecError(f"{where}: {exc}") from None
            missing = needed - available
            if missing:
                raise ChainSpecError(
                    f"{where}: template {name} reads undeclared variable(s) {sorted(missing)}; "
                    f"available here: {sorted(available)}"
                )
        available.add(step.id)
        enums[step.id] = enum_values(step, model_labels)
    return spec, schemas


def _check_binding(step: StepSpec, model_labels: dict[str, list[str]], where: str) -> None:
    if step.binding_kind not in BINDINGS:
        raise ChainSpecError(f"{where}: binding: unknown binding {step.binding!r} (known: {sorted(BINDINGS)})")
    for ref in filter(None, [step.binding if ":" in step.binding else None, step.attachment]):
        target = ref.split(":", 1)[1]
        if target not in model_labels:
            raise ChainSpecError(f"{where}: binding {ref!r} names no model of this release ({sorted(model_labels)})")
    for name, pattern in step.patterns.items():
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ChainSpecError(f"{where}: patterns.{name}: invalid regular expression: {exc}") from None


def _template_names(directory: Path, step: StepSpec, enums: dict[str, dict[str, list[str]]], where: str) -> list[str]:
    """A step's template may itself be a template (``responses/{{ classify_intent.intent }}.j2``): expand it
    over every value the earlier step's enum field can take, so a missing per-intent file fails at load time."""
    if "{{" not in step.template:
        return [step.template]
    env = environment(str(directory))
    refs = sorted(meta.find_undeclared_variables(env.parse(step.template)))
    if len(refs) != 1 or refs[0] not in enums or len(enums[refs[0]]) != 1:
        raise ChainSpecError(
            f"{where}: template: a templated name may read exactly one earlier step with one enum output "
            f"field, found {refs}"
        )
    ((field, values),) = enums[refs[0]].items()
    return sorted({env.from_string(step.template).render({refs[0]: {field: v}}) for v in values})


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
