"""What a chain expects of the models it uses, read from chain.yaml and its templates without running a case.

A step that reads a model (``classifier:intent_model``, ``attachment: vision:vision_model``) needs a classifier; a
step output declared ``enum_from: intent_model.labels`` is that model's label set, and every value a later step
branches on is a label the model must still emit:

- a per-value template name (``responses/{{ classify_intent.intent }}.j2``): each file the folder holds for it;
- ``escalate_intents`` and the values ``clarify.requires`` names;
- a comparison in any template the chain can render (``classify_intent.intent == "refund"``, ``... in [...]``).

Without this, a retrained model that stops emitting ``refund`` loses ``responses/refund.j2`` silently, found at
best as a drop in end-to-end accuracy. ``manifest/contracts.py`` compares these with what each model reported.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

from jinja2 import TemplateSyntaxError, meta, nodes

from release_assets.chains.render import environment
from release_assets.chains.schema import ChainSpec, StepSpec
from release_assets.chains.spec_checks import pattern_files
from release_assets.manifest.contracts import Expectation

# (step id, output field) -> the model whose labels the field takes (``enum_from: <model>.labels``)
EnumSources = dict[tuple[str, str], str]
_FIELD_NAME = re.compile(r"^\s*([a-z][a-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\s*$")


def enum_sources(spec: ChainSpec) -> EnumSources:
    out: EnumSources = {}
    for step in spec.steps:
        for name, f in step.fields().items():
            if f.type == "enum" and f.enum_from:
                out[(step.id, name)] = f.enum_from.removesuffix(".labels")
    return out


def chain_expectations(spec: ChainSpec, directory: Path) -> list[Expectation]:
    """Every expectation the chain's steps have of its models, deduplicated, in a stable order."""
    sources = enum_sources(spec)
    found: dict[tuple[str, str, str, str], Expectation] = {}

    def add(e: Expectation) -> None:
        found.setdefault((e.consumer, e.producer, e.what, e.name), e)

    for step in spec.steps:
        for e in _model_reads(step):
            add(e)
    for i, step in enumerate(spec.steps):
        earlier = {k: v for k, v in sources.items() if k[0] in {s.id for s in spec.steps[:i]}}
        for (sid, name), value, because in _branches(step, directory, earlier):
            add(Expectation(f"chain step {sid}", sources[(sid, name)], "label", value, because=because))
    templates = _renderable(spec, directory)
    for template in templates:
        for (sid, name), value in _compared_values(directory, template, sources):
            add(Expectation(f"chain step {sid}", sources[(sid, name)], "label", value, because=f"{template} tests it"))
    return sorted(found.values(), key=lambda e: (e.consumer, e.producer, e.what, e.name))


def _model_reads(step: StepSpec) -> Iterator[Expectation]:
    who = f"chain step {step.id}"
    if step.binding_kind == "classifier" and step.binding_target:
        yield Expectation(who, step.binding_target, "classifier", because=f"binding {step.binding}")
        for name, f in step.fields().items():
            # A classifier step that lists its values itself validates each answer against them: every value
            # listed is one the model must emit (one it never emits would be a branch that never runs).
            if f.type == "enum" and f.enum and not f.enum_from:
                for value in f.enum:
                    yield Expectation(who, step.binding_target, "label", value, because=f"output.{name} lists it")
    if step.attachment and ":" in step.attachment:
        yield Expectation(who, step.attachment.split(":", 1)[1], "classifier", because=f"attachment {step.attachment}")


def _branches(step: StepSpec, directory: Path, earlier: EnumSources) -> Iterator[tuple[tuple[str, str], str, str]]:
    """(enum field, value, why) for each value ``step`` handles by name: per-value templates, escalation, clarify."""
    single = _single_read(step.template)
    if single is not None and single[0] in earlier:
        field_ref, prefix, suffix = single
        for name in pattern_files(directory, step.template, f"{directory}: {step.id}"):
            value = name[len(prefix) : len(name) - len(suffix)]
            if value and "/" not in value and not _is_partial(directory, name):
                yield field_ref, value, f"{step.id} answers it with {name}"
    named = [(v, "escalate_intents") for v in step.escalate_intents]
    if step.clarify is not None:
        named += [(v, "clarify.requires") for v in step.clarify.requires]
    if len(earlier) == 1:  # with several enum fields before it, which one a value belongs to is not written down
        [field_ref] = earlier
        for value, where in named:
            yield field_ref, value, f"{step.id}'s {where} names it"


def _single_read(template: str) -> tuple[tuple[str, str], str, str] | None:
    """``prefix{{ step.field }}suffix`` -> ((step, field), prefix, suffix); None for anything
    else (a filter, two reads, an expression): such a name cannot be inverted into the values it stands for."""
    m = re.fullmatch(r"([^{}]*)\{\{([^{}]*)\}\}([^{}]*)", template)
    if m is None:
        return None
    ref = _FIELD_NAME.match(m.group(2))
    if ref is None:
        return None
    return (ref.group(1), ref.group(2)), m.group(1), m.group(3)


def _is_partial(directory: Path, name: str) -> bool:
    """A file under the per-value folder that is a piece of others (``_order.j2``), not an answer to a value."""
    return Path(name).name.startswith("_") or name in _referenced(directory)


def _referenced(directory: Path) -> set[str]:
    out: set[str] = set()
    env = environment(str(directory))
    for path in sorted(directory.rglob("*.j2")):
        try:
            tree = env.parse(path.read_text(encoding="utf-8"))
        except (TemplateSyntaxError, UnicodeDecodeError):
            continue  # loading the chain reports it, with the line
        out |= {r for r in meta.find_referenced_templates(tree) if r}
    return out


def _renderable(spec: ChainSpec, directory: Path) -> list[str]:
    """Every template file the chain can render, with the files they include, import or extend."""
    names: set[str] = set()
    for step in spec.steps:
        if "{{" in step.template:
            with contextlib.suppress(ValueError):  # loading the chain refused it already
                names |= set(pattern_files(directory, step.template, str(directory)))
        else:
            names.add(step.template)
        if step.clarify is not None:
            names.add(step.clarify.template)
    env = environment(str(directory))
    todo, seen = sorted(names), set()
    while todo:
        name = todo.pop()
        if name in seen or not (directory / name).is_file():
            continue
        seen.add(name)
        try:
            tree = env.parse((directory / name).read_text(encoding="utf-8"))
        except (TemplateSyntaxError, UnicodeDecodeError):
            continue
        todo += [r for r in meta.find_referenced_templates(tree) if r]
    return sorted(seen)


def _compared_values(directory: Path, name: str, sources: EnumSources) -> Iterator[tuple[tuple[str, str], str]]:
    """Each (enum field, literal) a template compares: ``a.b == "x"``, ``"x" != a.b``, ``a.b in ["x", "y"]``."""
    try:
        tree = environment(str(directory)).parse((directory / name).read_text(encoding="utf-8"))
    except (TemplateSyntaxError, UnicodeDecodeError):
        return
    for compare in tree.find_all(nodes.Compare):
        operands = [compare.expr, *(op.expr for op in compare.ops)]
        refs = [r for r in map(_enum_ref, operands) if r is not None and r in sources]
        if not refs:
            continue
        for operand in operands:
            for value in _literals(operand):
                for ref in refs:
                    yield ref, value


def _enum_ref(node: nodes.Node) -> tuple[str, str] | None:
    if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name):
        return node.node.name, node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.node, nodes.Name) and isinstance(node.arg, nodes.Const):
        return (node.node.name, node.arg.value) if isinstance(node.arg.value, str) else None
    return None


def _literals(node: nodes.Node) -> list[str]:
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, nodes.List | nodes.Tuple):
        return [v for item in node.items for v in _literals(item)]
    return []
