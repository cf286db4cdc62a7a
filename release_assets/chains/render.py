"""Sandboxed Jinja2: templates may read their context and nothing else, and an unknown variable is an error."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment


class TemplateError(ValueError):
    """A template that cannot compile or render; the message names the template file."""


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


def compile_check(template_dir: Path, name: str) -> set[str]:
    """Compile a template; return the variables it reads, so the spec can check they will exist."""
    env = environment(str(template_dir))
    path = template_dir / name
    if not path.exists():
        raise TemplateError(f"{path}: template not found")
    try:
        source = path.read_text(encoding="utf-8")
        return meta.find_undeclared_variables(env.parse(source))
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{path}:{exc.lineno}: {exc.message}") from None


def render(template_dir: Path, name: str, context: dict) -> str:
    env = environment(str(template_dir))
    try:
        return env.get_template(name).render(context).strip()
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{template_dir / name}:{exc.lineno}: {exc.message}") from None
    except Exception as exc:  # UndefinedError and sandbox SecurityError both mean: this template is broken
        raise TemplateError(f"{template_dir / name}: {type(exc).__name__}: {exc}") from None


@lru_cache(maxsize=256)
def _compiled_string(template_dir: str, source: str):
    # Compiling is ~50x the cost of rendering; a chain renders the same few strings for every case.
    return environment(template_dir).from_string(source)


def render_string(template_dir: Path, source: str, context: dict) -> str:
    """Render a template-valued field of the spec itself (e.g. a per-intent template name)."""
    try:
        return _compiled_string(str(template_dir), source).render(context).strip()
    except Exception as exc:
        raise TemplateError(f"{source!r}: {type(exc).__name__}: {exc}") from None
