"""Loading a prompt-chain config (``prompts/<chain>/chain.yaml``, schema in ``schema.py``).

Loading validates everything that can be checked before a single case runs: every template compiles, every
variable a template reads is provided by the message or an earlier step, every step output it reads is a declared
field, every binding names a model the release declares, every output schema compiles to a pydantic model, and
every step output the golden suite is scored against (``evaluation:``) exists.
Every refusal is a ChainSpecError whose one-line message names the file, the step and, for a template, the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, create_model

from release_assets.chains.render import Scope
from release_assets.chains.schema import SCALARS, ChainSpec, ChainSpecError, StepSpec
from release_assets.chains.spec_checks import (
    check_binding,
    check_clarify,
    check_evaluation,
    check_judge,
    check_template_file,
    read_spec,
    template_names,
)

__all__ = ["BASE_CONTEXT", "CHAIN_FILE", "ChainSpecError", "load_chain", "output_model"]

CHAIN_FILE = "chain.yaml"
# What ChainRunner.run puts in every template's context, besides the outputs of the steps that ran before.
BASE_CONTEXT = {"message", "attachment", "kb", "products"}
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
    spec = read_spec(path, directory)

    schemas: dict[str, type] = {}
    enums: dict[str, dict[str, list[str]]] = {}
    fields: dict[str, tuple[str, ...]] = {}  # the output fields of each step that runs before this one
    for i, step in enumerate(spec.steps):
        where = f"{path}: steps[{i}] ({step.id})"
        if step.id in fields:
            raise ChainSpecError(f"{where}: id: another step is already called {step.id!r}")
        check_binding(step, model_labels, where)
        try:
            schemas[step.id] = output_model(step, model_labels)
        except (ValueError, KeyError) as exc:
            raise ChainSpecError(f"{where}: {exc}") from None
        scope = Scope(
            names=frozenset(BASE_CONTEXT | fields.keys()),
            fields=dict(fields),
            pending=frozenset(s.id for s in spec.steps[i:]),
        )
        for name, note in template_names(directory, step, scope, enums, where).items():
            check_template_file(directory, name, scope, note, where)
        if step.clarify is not None:
            check_clarify(step, spec.steps[:i], enums, where)
            # The clarifying template also reads the `clarify` fields, and nothing else of it.
            asks = Scope(scope.names | {"clarify"}, {**scope.fields, "clarify": CLARIFY_FIELDS}, scope.pending)
            check_template_file(directory, step.clarify.template, asks, " (named by clarify.template)", where)
        fields[step.id] = tuple(step.fields())
        enums[step.id] = enum_values(step, model_labels)
    check_evaluation(spec, path)
    check_judge(spec, path)
    return spec, schemas


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
