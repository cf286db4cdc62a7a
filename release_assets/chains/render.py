"""Sandboxed Jinja2: templates may read their context and nothing else, and an unknown variable is an error.

``check_template`` finds at load time what would otherwise fail case by case (an undefined variable, a field the
step does not output, a missing include, private attribute access); ``render`` reports what only data can trigger
with the template and line it came from. Template paths in messages are relative to the chain folder.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound, TemplateSyntaxError, meta, nodes
from jinja2.loaders import split_template_path
from jinja2.sandbox import SandboxedEnvironment

from release_assets.core.textfiles import NotUTF8Error, decode_utf8

# A step's output is a dict: `classify_intent.items()` reaches a dict method, not a field.
DICT_METHODS = frozenset(name for name in dir(dict) if not name.startswith("_"))
_INCLUDES: dict[type[nodes.Include | nodes.Extends | nodes.Import | nodes.FromImport], str] = {
    nodes.Include: "included",
    nodes.Extends: "extended",
    nodes.Import: "imported",
    nodes.FromImport: "imported",
}


# Reads of an attribute or a key (typed as a tuple so `find_all` yields these node types, not their base).
_LOOKUPS: tuple[type[nodes.Getattr | nodes.Getitem], ...] = (nodes.Getattr, nodes.Getitem)


class TemplateError(ValueError):
    """A template that cannot compile or render; the message names the template file."""


class TemplateNotFoundError(TemplateError):
    """A step's own template file is missing (the caller may say which value of a templated name needs it)."""


@dataclass(frozen=True)
class Scope:
    """What a template may read: the names the runner puts in its context, with the declared output fields of
    each step among them, and the steps that have not run yet (to explain why one of those is undefined)."""

    names: frozenset[str]
    fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    pending: frozenset[str] = frozenset()


@lru_cache(maxsize=32)
def environment(template_dir: str) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FileSystemLoader(template_dir),
        undefined=StrictUndefined,
        autoescape=False,  # plain text for models and customers, not HTML
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def check_template(template_dir: Path, name: str, scope: Scope) -> None:
    """Check a template file and everything it includes; raise TemplateError with ``name:line: problem``."""
    _check_file(template_dir, name, scope, seen=set())


def check_pattern(template_dir: Path, source: str, scope: Scope) -> nodes.Template:
    """Check a template-valued field of the spec itself (a per-intent template name); return its syntax tree."""
    return _check_source(template_dir, source, f"template: {source!r}", scope)


def field_reads(tree: nodes.Template) -> set[tuple[str, str]] | None:
    """The ``step.field`` reads of a template-valued name, or None when it reads anything else (the message, a
    whole step), whose values cannot be listed."""
    reads, targets = set(), set()
    for node in tree.find_all(_LOOKUPS):
        key = _key(node)
        if isinstance(node.node, nodes.Name) and key is not None:
            reads.add((node.node.name, key))
            targets.add(id(node.node))
    if any(id(n) not in targets for n in tree.find_all(nodes.Name) if n.ctx == "load"):
        return None
    return reads


def _check_file(template_dir: Path, name: str, scope: Scope, seen: set[str]) -> None:
    if name in seen:  # a template included twice, or a cycle: checked once
        return
    seen.add(name)
    try:
        split_template_path(name)  # the loader refuses `..`, so rendering would too
    except TemplateNotFound:
        raise TemplateError(f"{name}: a template must be a path inside the chain folder {template_dir}") from None
    path = template_dir / name
    if not path.is_file():
        raise TemplateNotFoundError(f"{name}: template not found in chain folder {template_dir}")
    try:
        source = decode_utf8(path.read_bytes())
    except NotUTF8Error as exc:
        raise TemplateError(f"{name}:{exc.line}: {exc.detail}") from None
    tree = _check_source(template_dir, source, name, scope)
    # An included template sees the includer's context and its loop and `set` variables.
    stored = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    inner = Scope(scope.names | stored, scope.fields, scope.pending)
    for node in tree.find_all(tuple(_INCLUDES)):
        if not isinstance(node.template, nodes.Const) or not isinstance(node.template.value, str):
            continue  # a computed name can only be checked when it renders
        target = node.template.value
        if not (template_dir / target).is_file():
            if getattr(node, "ignore_missing", False):
                continue
            raise TemplateError(
                f"{name}:{node.lineno}: {_INCLUDES[type(node)]} template {target!r} not found in chain folder "
                f"{template_dir}"
            )
        _check_file(template_dir, target, inner, seen)


def _check_source(template_dir: Path, source: str, label: str, scope: Scope) -> nodes.Template:
    env = environment(str(template_dir))
    try:
        tree = env.parse(source)
        env.compile(tree)  # what only the compiler checks (e.g. an unknown filter) also fails here, with its line
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{label}:{exc.lineno}: {exc.message}") from None
    problems = _problems(tree, scope, env)
    if problems:
        line, problem = min(problems, key=lambda p: p[0])  # the first in the file; ties keep the walk's order
        raise TemplateError(f"{label}:{line}: {problem}")
    return tree


def _problems(tree: nodes.Template, scope: Scope, env: SandboxedEnvironment) -> list[tuple[int, str]]:
    # Jinja's own analysis knows loops, `set`, macros and globals; the walk only adds where a name is first read.
    undeclared = meta.find_undeclared_variables(tree)
    first_read: dict[str, int] = {}
    problems = []
    for node in _walk(tree):
        if isinstance(node, nodes.Name) and node.ctx == "load":
            first_read.setdefault(node.name, node.lineno)
    for name in sorted(undeclared - scope.names):
        problems.append((first_read.get(name, 1), _undefined(name, scope)))
    for node in _walk(tree):
        # Compiling leaves an unknown filter or test under `{% if %}` to fail while rendering; no template here
        # guards an optional one, so any unknown name is a typo.
        if isinstance(node, nodes.Filter) and node.name not in env.filters:
            problems.append((node.lineno, f"No filter named {node.name!r}."))
        elif isinstance(node, nodes.Test) and node.name not in env.tests:
            problems.append((node.lineno, f"No test named {node.name!r}."))
        key = _key(node)
        if key is None or not isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Filter):
            continue  # (a key is only read by these)
        by_attribute = not isinstance(node, nodes.Getitem)
        # The sandbox refuses these attributes while rendering, in every case; `x["__class__"]` falls back to them.
        if key.startswith("__" if not by_attribute else "_"):
            problems.append((node.lineno, f"attribute {key!r} is refused by the sandbox (names starting with '_')"))
            continue
        target = node.node
        if isinstance(target, nodes.Name) and target.name in undeclared and target.name in scope.fields:
            known = scope.fields[target.name]
            if key not in known and not (by_attribute and key in DICT_METHODS):
                problems.append(
                    (node.lineno, f"{target.name} has no output field {key!r} (fields: {', '.join(known)})")
                )
    return problems


def _undefined(name: str, scope: Scope) -> str:
    available = ", ".join(sorted(scope.names))
    if name in scope.pending:
        why = "a step that has not run yet when this template renders"
        return f"undefined variable {name!r} ({why}; available: {available})"
    close = difflib.get_close_matches(name, sorted(scope.names), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"undefined variable {name!r} (available: {available}{hint})"


def _key(node: nodes.Node) -> str | None:
    """The attribute or key a node reads with a constant name: ``x.a``, ``x["a"]`` or ``x | attr("a")``."""
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.arg.value
    if isinstance(node, nodes.Filter) and node.name == "attr" and node.args and isinstance(node.args[0], nodes.Const):
        return str(node.args[0].value)
    return None


def _walk(node: nodes.Node) -> Iterator[nodes.Node]:
    """Children before parents, so ``a.b.c`` reports ``b`` before ``c``: the order they are written in."""
    for child in node.iter_child_nodes():
        yield from _walk(child)
    yield node


def render(template_dir: Path, name: str, context: dict) -> str:
    env = environment(str(template_dir))
    try:
        return env.get_template(name).render(context).strip()
    except TemplateNotFound as exc:
        raise TemplateError(f"template {exc.name} not found in chain folder {template_dir}") from None
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.name or name}:{exc.lineno}: {exc.message}") from None
    except Exception as exc:  # UndefinedError and sandbox SecurityError both mean: this template is broken
        where, line = _failing_template(exc, template_dir, name)
        at = f" (line {line})" if line else ""
        raise TemplateError(f"{type(exc).__name__} in {where}: {exc}{at}") from None


def _failing_template(exc: Exception, template_dir: Path, name: str) -> tuple[str, int | None]:
    """The innermost template in the traceback (an included one, if it failed there) and its line: Jinja
    rewrites the traceback so that each template frame carries the template's file and line."""
    root = os.path.normpath(template_dir) + os.sep
    where, line = name, None
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith(root):
            where, line = Path(filename[len(root) :]).as_posix(), tb.tb_lineno
        tb = tb.tb_next
    return where, line


@lru_cache(maxsize=256)
def _compiled_string(template_dir: str, source: str):
    # Compiling is ~50x the cost of rendering; a chain renders the same few strings for every case.
    return environment(template_dir).from_string(source)


def render_string(template_dir: Path, source: str, context: dict) -> str:
    """Render a template-valued field of the spec itself (e.g. a per-intent template name)."""
    try:
        return _compiled_string(str(template_dir), source).render(context).strip()
    except Exception as exc:
        raise TemplateError(f"{type(exc).__name__} in template name {source!r}: {exc}") from None
